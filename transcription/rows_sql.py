"""Names and values for the hand-written SQL on transcription rows (services.rows for the worker, selectors for
submit and long-polls): the model's table and columns quoted for the current database, and a primary key prepared
as the field prepares it. The ORM compiles a statement anew on every call; these hot paths write theirs once."""

from __future__ import annotations

from django.db import connection

from transcription.models import Transcription


def column(name: str) -> str:
    return connection.ops.quote_name(Transcription._meta.get_field(name).column)


def table() -> str:
    return connection.ops.quote_name(Transcription._meta.db_table)


def pk_value(transcription_id):
    return Transcription._meta.pk.get_db_prep_value(transcription_id, connection)
