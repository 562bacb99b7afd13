"""Finance staff may view transcriptions in admin (the job page the ledger links to; read-only)."""

from django.contrib.auth.management import create_permissions
from django.contrib.contenttypes.management import create_contenttypes
from django.db import migrations


def grant(apps, schema_editor):
    config = apps.get_app_config("transcription")
    config.models_module = True
    create_contenttypes(config, verbosity=0, apps=apps)
    create_permissions(config, verbosity=0, apps=apps)
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    group, _ = Group.objects.get_or_create(name="Finance")
    group.permissions.add(
        *Permission.objects.filter(content_type__app_label="transcription", codename="view_transcription")
    )


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for group in Group.objects.filter(name="Finance"):
        group.permissions.remove(*group.permissions.filter(content_type__app_label="transcription"))


class Migration(migrations.Migration):
    dependencies = [
        ("transcription", "0005_retention"),
        ("billing", "0005_finance_group"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [migrations.RunPython(grant, revoke)]
