"""Retention: what expired on each transcription, and the daily task (default cluster) that expires it."""

from django.db import migrations, models


def create(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name="transcription-retention",
        defaults={
            "func": "transcription.tasks.transcription_retention_task",
            "schedule_type": "D",
            "repeats": -1,
        },
    )


def remove(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="transcription-retention").delete()


class Migration(migrations.Migration):
    dependencies = [("transcription", "0004_orphan_sweeper_schedule"), ("tenants", "0003_retention")]

    operations = [
        migrations.AddField(
            model_name="transcription",
            name="audio_expired_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="transcription",
            name="transcript_expired_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(create, remove),
    ]
