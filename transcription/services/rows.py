"""The reads and the write of the transcription rows that the worker makes for every job, as plain SQL written once.

The ORM compiles a statement anew on every call: about 0.35 ms of CPU for these one-row reads, several times
the round trip itself (bench/worker_cpu.py). The statement text comes from the model's metadata (table and column
names), and values go through the fields' own database preparation, so PostgreSQL and SQLite read the same.
"""

from __future__ import annotations

from functools import cache

from django.db import connection
from django.utils import timezone

from transcription.models import Transcription
from transcription.rows_sql import column as _column
from transcription.rows_sql import pk_value as _pk
from transcription.rows_sql import table as _table

Status = Transcription.Status


# The statements name only the model's table and columns; every value is a parameter.
@cache
def _runnable_sql(vendor: str) -> str:
    status, lease = _column("status"), _column("lease_expires_at")
    where = f"{_column('id')} = %s AND ({status} = %s OR ({status} = %s AND {lease} IS NOT NULL AND {lease} < %s))"
    return f"SELECT 1 FROM {_table()} WHERE {where}"  # noqa: S608


@cache
def _queued_sql(vendor: str) -> str:
    return f"SELECT 1 FROM {_table()} WHERE {_column('status')} = %s LIMIT 1"  # noqa: S608


def transcriptions_queued() -> bool:
    """Whether any transcription is queued: what a batch asks between its rounds (the status is indexed)."""
    with connection.cursor() as cursor:
        cursor.execute(_queued_sql(connection.vendor), [Status.QUEUED.value])
        return cursor.fetchone() is not None


def _all_columns() -> str:
    return ", ".join(_column(field.name) for field in Transcription._meta.concrete_fields)


@cache
def _row_sql(vendor: str, lock: str) -> str:
    return f"SELECT {_all_columns()} FROM {_table()} WHERE {_column('id')} = %s{lock}"  # noqa: S608


def transcription_locked_row(*, transcription_id) -> Transcription | None:
    """The whole row, locked for this transaction as common.transcription_lock() locks it; None if missing."""
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    found = list(Transcription.objects.raw(_row_sql(connection.vendor, lock), [_pk(transcription_id)]))
    return found[0] if found else None


@cache
def _ready_sql(vendor: str, lock: str) -> str:
    columns = _all_columns()
    where = f"{_column('status')} = %s AND {_column('attempt')} < %s"
    return f"SELECT {columns} FROM {_table()} WHERE {where} ORDER BY {_column('enqueued_at')} LIMIT %s{lock}"  # noqa: S608


def transcriptions_ready_locked(*, limit: int, max_attempts: int) -> list[Transcription]:
    """Up to `limit` queued transcriptions under `max_attempts`, oldest first, each locked for this transaction;
    rows another worker has locked are skipped (as select_for_update(skip_locked=True) reads them)."""
    features = connection.features
    lock = " FOR UPDATE SKIP LOCKED" if features.has_select_for_update_skip_locked else ""
    return list(
        Transcription.objects.raw(_ready_sql(connection.vendor, lock), [Status.QUEUED.value, max_attempts, limit])
    )


@cache
def _claim_sql(vendor: str, count: int) -> str:
    attempt, started = _column("attempt"), _column("started_at")
    assignments = (
        f"{attempt} = {attempt} + 1, {_column('status')} = %s, {_column('lease_expires_at')} = %s,"
        f" {_column('progress')} = %s, {_column('segments')} = %s, {started} = COALESCE({started}, %s)"
    )
    ids = ", ".join(["%s"] * count)
    return f"UPDATE {_table()} SET {assignments} WHERE {_column('id')} IN ({ids})"  # noqa: S608


def transcriptions_claim_write(transcription_ids: list, *, lease, now) -> None:
    """The claim of rows this transaction has locked: next attempt, running, the lease, no progress or segments
    yet, started now unless an earlier attempt started it."""
    field = Transcription._meta.get_field
    values = [
        Status.RUNNING.value,
        field("lease_expires_at").get_db_prep_save(lease, connection),
        0.0,
        field("segments").get_db_prep_save([], connection),
        field("started_at").get_db_prep_save(now, connection),
    ]
    with connection.cursor() as cursor:
        cursor.execute(_claim_sql(connection.vendor, len(transcription_ids)), [*values, *map(_pk, transcription_ids)])


def transcription_runnable(*, transcription_id) -> bool:
    """Whether a task could claim the transcription now (queued, or running with its lease expired), without
    a lock: lifecycle._runnable() asked of the database. The queued task of a transcription that a batch
    already took learns that it has nothing to do from this one cheap read."""
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(
            _runnable_sql(connection.vendor), [_pk(transcription_id), Status.QUEUED.value, Status.RUNNING.value, now]
        )
        return cursor.fetchone() is not None


@cache
def _lock_sql(vendor: str, for_update: bool) -> str:
    columns = ", ".join(_column(name) for name in ("status", "attempt", "held_tokens"))
    lock = " FOR UPDATE" if for_update else ""
    return f"SELECT {columns} FROM {_table()} WHERE {_column('id')} = %s{lock}"  # noqa: S608


def transcription_lock_state(*, transcription_id) -> tuple[str, int, int]:
    """(status, attempt, held_tokens) of the row, locked for this transaction as common.transcription_lock()
    locks it; raises Transcription.DoesNotExist."""
    sql = _lock_sql(connection.vendor, connection.features.has_select_for_update)
    with connection.cursor() as cursor:
        cursor.execute(sql, [_pk(transcription_id)])
        row = cursor.fetchone()
    if row is None:
        raise Transcription.DoesNotExist(f"Transcription {transcription_id} does not exist")
    return row[0], int(row[1]), int(row[2])


@cache
def _update_sql(vendor: str, fields: tuple[str, ...]) -> str:
    assignments = ", ".join(f"{_column(name)} = %s" for name in fields)
    return f"UPDATE {_table()} SET {assignments} WHERE {_column('id')} = %s"  # noqa: S608


def transcription_write(t: Transcription, fields: list[str]) -> None:
    """t.save(update_fields=fields) for a row this transaction has locked: each value as its field prepares it
    for the database (pre_save, then get_db_prep_save, as Model.save does); the model has no save signals."""
    model_fields = [Transcription._meta.get_field(name) for name in fields]
    values = [field.get_db_prep_save(field.pre_save(t, False), connection) for field in model_fields]
    with connection.cursor() as cursor:
        cursor.execute(_update_sql(connection.vendor, tuple(fields)), [*values, _pk(t.pk)])


@cache
def _final_guarded_sql(vendor: str, fields: tuple[str, ...]) -> str:
    from billing.balance_sql import account_exists_sql

    assignments = ", ".join(f"{_column(name)} = %s" for name in fields)
    guard = " AND ".join(f"{_column(name)} = %s" for name in ("id", "status", "attempt", "held_tokens"))
    return f"UPDATE {_table()} SET {assignments} WHERE {guard} AND {account_exists_sql()} RETURNING {_column('id')}"  # noqa: S608


def transcription_write_guarded(t: Transcription, fields: list[str], *, status: str, attempt: int, held: int):
    """(sql, params) of transcription_write's UPDATE, made only if the row still has this status, attempt and
    hold and its tenant has a balance row; RETURNING the id when it matched (billing's `first` statement)."""
    model_fields = [Transcription._meta.get_field(name) for name in fields]
    values = [field.get_db_prep_save(field.pre_save(t, False), connection) for field in model_fields]
    params = [*values, _pk(t.pk), status, attempt, held, t.tenant_id]
    return _final_guarded_sql(connection.vendor, tuple(fields)), params
