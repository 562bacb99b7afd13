"""Shared by migrations that change a CHECK constraint on the ledger (Django's loader skips `_` modules).

SQLite changes a CHECK constraint by rebuilding the table, which drops its triggers: this puts the
append-only triggers of 0002 back. PostgreSQL alters the table in place and keeps them.
"""

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
