from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("tenants", "0002_invitation")]

    operations = [
        migrations.AddField(
            model_name="tenant",
            name="audio_retention_days",
            field=models.PositiveIntegerField(blank=True, default=30, null=True),
        ),
        migrations.AddField(
            model_name="tenant",
            name="transcript_retention_days",
            field=models.PositiveIntegerField(blank=True, default=None, null=True),
        ),
    ]
