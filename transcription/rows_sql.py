"""Names and values for the hand-written SQL on transcription rows (services.rows for the worker, selectors for
submit and long-polls): the model's table and columns quoted for the current database, and a primary key prepared
as the field prepares it. The ORM compiles a statement anew on every call; these hot paths write theirs once."""

from __future__ import annotations

import functools

from django.db import connection

from transcription.models import Transcription


def column(name: str) -> str:
    return connection.ops.quote_name(Transcription._meta.get_field(name).column)


def table() -> str:
    return connection.ops.quote_name(Transcription._meta.db_table)


def pk_value(transcription_id):
    return Transcription._meta.pk.get_db_prep_value(transcription_id, connection)


@functools.cache
def _insert_selecting_from_acc() -> tuple[str, tuple]:
    fields = tuple(Transcription._meta.concrete_fields)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    values = ", ".join(f"%s::{f.cast_db_type(connection)}" for f in fields)
    return f"INSERT INTO {table()} ({columns}) SELECT {values} FROM acc", fields  # noqa: S608 - names from _meta


def insert_with_balance_move(t: Transcription) -> tuple[str, list]:
    """A new row's INSERT as part of billing's one-statement money write (billing.balance_sql): it reads that
    statement's `acc`, so the row is inserted only if the balance moved. Values as Model.save gives them
    (pre_save, then get_db_prep_save); the model has no save signals."""
    sql, fields = _insert_selecting_from_acc()
    return sql, [f.get_db_prep_save(f.pre_save(t, True), connection) for f in fields]
