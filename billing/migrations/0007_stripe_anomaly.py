"""Stripe anomalies: signed objects that were not credited as they stood; the Finance group may view them."""

import django.db.models.deletion
from django.contrib.auth.management import create_permissions
from django.contrib.contenttypes.management import create_contenttypes
from django.db import migrations, models


def finance_can_view(apps, schema_editor):
    # Content types and model permissions normally appear after migrate (post_migrate); make them now.
    config = apps.get_app_config("billing")
    config.models_module = True
    create_contenttypes(config, verbosity=0, apps=apps)
    create_permissions(config, verbosity=0, apps=apps)
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    view = Permission.objects.get(content_type__app_label="billing", codename="view_stripeanomaly")
    for group in Group.objects.filter(name="Finance"):
        group.permissions.add(view)


def finance_cannot_view(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    for group in Group.objects.filter(name="Finance"):
        group.permissions.remove(*Permission.objects.filter(codename="view_stripeanomaly"))


class Migration(migrations.Migration):

    dependencies = [
        ('billing', '0006_ledger_hold_extend'),
        ('tenants', '0002_invitation'),
        ('auth', '0012_alter_user_first_name_max_length'),
        ('contenttypes', '0002_remove_content_type_name'),
    ]

    operations = [
        migrations.CreateModel(
            name='StripeAnomaly',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('event_id', models.CharField(blank=True, default='', max_length=255)),
                ('event_type', models.CharField(blank=True, default='', max_length=100)),
                ('object_id', models.CharField(blank=True, db_index=True, default='', max_length=255)),
                ('reason', models.CharField(choices=[('unknown_session', "Session not created by Tingxie's checkout"), ('topup_mismatch', 'Metadata names another top-up'), ('tenant_mismatch', 'Metadata names another tenant'), ('amount_mismatch', 'Amount differs from the recorded price'), ('currency_mismatch', 'Currency differs from the recorded price'), ('malformed', 'Malformed Stripe object')], db_index=True, max_length=32)),
                ('detail', models.TextField()),
                ('expected_amount', models.BigIntegerField(blank=True, help_text="In the currency's minor unit.", null=True)),
                ('expected_currency', models.CharField(blank=True, default='', max_length=16)),
                ('received_amount', models.BigIntegerField(blank=True, help_text="In the currency's minor unit.", null=True)),
                ('received_currency', models.CharField(blank=True, default='', max_length=16)),
                ('payload', models.JSONField(help_text='The raw event (or the session, for reconciliation).')),
                ('created_at', models.DateTimeField(auto_now_add=True, db_index=True)),
                ('tenant', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='stripe_anomalies', to='tenants.tenant')),
                ('topup', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='anomalies', to='billing.topup')),
            ],
            options={
                'verbose_name_plural': 'Stripe anomalies',
                'ordering': ['-created_at'],
                'constraints': [models.UniqueConstraint(condition=models.Q(('event_id', ''), _negated=True), fields=('event_id', 'reason'), name='uniq_stripe_anomaly_event_reason'), models.UniqueConstraint(condition=models.Q(('event_id', '')), fields=('object_id', 'reason'), name='uniq_stripe_anomaly_object_reason')],
            },
        ),
        migrations.RunPython(finance_can_view, finance_cannot_view),
    ]
