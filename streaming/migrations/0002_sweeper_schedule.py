"""Every minute the default cluster closes streams whose worker stopped beating (and settles them)."""

from django.db import migrations


def create(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name="stream-sessions-sweeper",
        defaults={
            "func": "streaming.tasks.stream_sessions_sweep_task",
            "schedule_type": "I",
            "minutes": 1,
            "repeats": -1,
        },
    )


def remove(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="stream-sessions-sweeper").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("streaming", "0001_initial"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]
    operations = [migrations.RunPython(create, remove)]
