"""The orphan sweep (stored audio no row references, stale temporary uploads) runs every 10 minutes on the default cluster."""

from django.db import migrations


def create(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name="transcription-orphan-sweeper",
        defaults={
            "func": "transcription.tasks.transcription_orphans_sweep_task",
            "schedule_type": "I",
            "minutes": 10,
            "repeats": -1,
        },
    )


def remove(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="transcription-orphan-sweeper").delete()


class Migration(migrations.Migration):
    dependencies = [("transcription", "0003_warnings")]
    operations = [migrations.RunPython(create, remove)]
