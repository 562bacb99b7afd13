"""One word in code and API: LedgerEntry.job becomes LedgerEntry.transcription (same column data)."""

from django.db import migrations, models
from django.db.models import Q

from billing.migrations._ledger_triggers import restore_sqlite_triggers


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0007_stripe_anomaly"),
        ("transcription", "0003_warnings"),
    ]

    operations = [
        migrations.RemoveConstraint(model_name="ledgerentry", name="uniq_job_money_kind"),
        migrations.RemoveConstraint(model_name="ledgerentry", name="job_kinds_have_job"),
        migrations.RenameField(model_name="ledgerentry", old_name="job", new_name="transcription"),
        migrations.AddConstraint(
            model_name="ledgerentry",
            constraint=models.UniqueConstraint(
                fields=["transcription", "kind"],
                condition=Q(kind__in=["hold", "release", "debit"]),
                name="uniq_transcription_money_kind",
            ),
        ),
        migrations.AddConstraint(
            model_name="ledgerentry",
            constraint=models.CheckConstraint(
                condition=~Q(kind__in=["hold", "hold_extend", "release", "debit"]) | Q(transcription__isnull=False),
                name="transcription_kinds_have_transcription",
            ),
        ),
        migrations.RunPython(restore_sqlite_triggers, migrations.RunPython.noop),
    ]
