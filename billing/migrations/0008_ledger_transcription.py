"""One word in code and API: LedgerEntry.job becomes LedgerEntry.transcription (same column data)."""

from django.db import migrations, models
from django.db.models import Q

# SQLite rebuilds the table to change a CHECK constraint and drops its triggers: put the append-only
# triggers of 0002 back (PostgreSQL alters in place and keeps them).
SQLITE_TRIGGERS = [
    "CREATE TRIGGER IF NOT EXISTS billing_ledger_no_update BEFORE UPDATE ON billing_ledgerentry "
    "BEGIN SELECT RAISE(ABORT, 'billing_ledgerentry is append-only'); END;",
    "CREATE TRIGGER IF NOT EXISTS billing_ledger_no_delete BEFORE DELETE ON billing_ledgerentry "
    "BEGIN SELECT RAISE(ABORT, 'billing_ledgerentry is append-only'); END;",
]


def restore_sqlite_triggers(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        for sql in SQLITE_TRIGGERS:
            schema_editor.execute(sql)


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
