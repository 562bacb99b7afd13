"""The "Finance" staff group: balances (read + adjust with a memo), the ledger (read), packs, top-ups, events."""

from django.contrib.auth.management import create_permissions
from django.contrib.contenttypes.management import create_contenttypes
from django.db import migrations

ADJUST = ("adjust_balance", "Can grant and adjust token balances (with a memo)")
RECONCILE = ("reconcile_topups", "Can reconcile Stripe top-ups with the ledger")

FINANCE_PERMISSIONS = {
    ("billing", "balanceaccount"): ["view_balanceaccount", ADJUST[0]],
    ("billing", "ledgerentry"): ["view_ledgerentry"],
    ("billing", "tokenpack"): ["view_tokenpack", "add_tokenpack", "change_tokenpack"],
    ("billing", "tokenpackprice"): ["view_tokenpackprice", "add_tokenpackprice", "change_tokenpackprice", "delete_tokenpackprice"],
    ("billing", "topup"): ["view_topup", RECONCILE[0]],
    ("billing", "stripeevent"): ["view_stripeevent"],
    ("tenants", "tenant"): ["view_tenant"],
}


def create_group(apps, schema_editor):
    # Content types and model permissions normally appear after migrate (post_migrate); make them now.
    for label in ("billing", "tenants"):
        config = apps.get_app_config(label)
        config.models_module = True
        create_contenttypes(config, verbosity=0, apps=apps)
        create_permissions(config, verbosity=0, apps=apps)
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    account_ct = ContentType.objects.get(app_label="billing", model="balanceaccount")
    topup_ct = ContentType.objects.get(app_label="billing", model="topup")
    Permission.objects.get_or_create(content_type=account_ct, codename=ADJUST[0], defaults={"name": ADJUST[1]})
    Permission.objects.get_or_create(content_type=topup_ct, codename=RECONCILE[0], defaults={"name": RECONCILE[1]})

    group, _ = Group.objects.get_or_create(name="Finance")
    for (app_label, model), codenames in FINANCE_PERMISSIONS.items():
        ct = ContentType.objects.get(app_label=app_label, model=model)
        group.permissions.add(*Permission.objects.filter(content_type=ct, codename__in=codenames))


def remove_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name="Finance").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0004_seed_token_packs"),
        ("tenants", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_group, remove_group)]
