"""The sweeper runs every minute on the default cluster (the one `make run` and web hosts run)."""

from django.db import migrations


def create(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name="transcription-sweeper",
        defaults={"func": "transcription.tasks.transcription_sweep_task", "schedule_type": "I", "minutes": 1, "repeats": -1},
    )


def remove(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="transcription-sweeper").delete()


class Migration(migrations.Migration):
    dependencies = [("transcription", "0001_initial"), ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more")]
    operations = [migrations.RunPython(create, remove)]
