"""The money write as one PostgreSQL statement: the balance UPDATE and its ledger INSERT in a data-modifying CTE.

The ORM path (billing.services) takes three round trips under the tenant's balance-row lock: SELECT ... FOR
UPDATE, INSERT the entry, UPDATE the account. Here the UPDATE takes that row lock itself (the lock order of
billing.lock_objects still holds: the caller's transcription row first, then this), checks the balance in its
WHERE clause, and hands the new balance to the INSERT, which fills `available_after`/`held_after` from it.
Every other column gets what the ORM would give it: the instance's value or default, `pre_save` (created_at),
and the field's own conversion to a database value. No model save() runs (LedgerEntry's only refuses updates) and
no signal is sent for ledger entries (none is connected).
"""

from __future__ import annotations

import functools

from django.db import connection
from django.utils import timezone

from billing.models import BalanceAccount, LedgerEntry

RUNNING = ("available_after", "held_after")  # filled from the updated balance, per entry


@functools.cache
def _columns() -> tuple:
    return tuple(f for f in LedgerEntry._meta.concrete_fields if not f.primary_key and f.name not in RUNNING)


@functools.cache
def _statement(n: int, guarded: bool, also: str = "", first: str = "") -> str:
    """The SQL for `n` entries: params are those of `first` (a statement returning a row when the
    balance may move: the balance moves only then), the two summed deltas, the time, the tenant id, `need` if
    guarded, then the params of `also` (a data-modifying statement run with it, reading the CTE `acc`: the new
    balance, one row when the balance moved, none when not), then per entry its two running-balance offsets and
    its columns."""
    quote = connection.ops.quote_name
    account, ledger = BalanceAccount._meta, LedgerEntry._meta
    available, held, updated, tenant = (
        quote(account.get_field(name).column) for name in ("available", "held", "updated_at", "tenant")
    )
    fields = _columns()
    casts = ", ".join(f"%s::{f.cast_db_type(connection)}" for f in fields)
    rows = ", ".join(f"({i}, %s::bigint, %s::bigint, {casts})" for i in range(n))
    names = ", ".join(f"c{i}" for i in range(len(fields)))
    picked = ", ".join(f"e.c{i}" for i in range(len(fields)))
    running = ", ".join(quote(ledger.get_field(name).column) for name in RUNNING)
    # Only identifiers from the models' _meta (quoted) go into the text; every value is a parameter.
    sql = (
        f"WITH {f'first AS ({first}), ' if first else ''}acc AS (UPDATE {quote(account.db_table)} "  # noqa: S608
        f"SET {available} = {available} + %s, {held} = {held} + %s, {updated} = %s "
        f"WHERE {tenant} = %s{f' AND {available} >= %s' if guarded else ''}"
        f"{' AND EXISTS (SELECT 1 FROM first)' if first else ''} "
        f"RETURNING {available}, {held}) "
        f"{f', also AS ({also}) ' if also else ''}"
        f"INSERT INTO {quote(ledger.db_table)} ({', '.join(quote(f.column) for f in fields)}, {running}) "
        f"SELECT {picked}, acc.{available} + e.la, acc.{held} + e.lh "
        f"FROM acc CROSS JOIN (VALUES {rows}) AS e(o, la, lh, {names}) ORDER BY e.o "
        f"RETURNING {quote(ledger.pk.column)}, {running}"
    )
    return sql


def balance_move_returning(
    *,
    tenant_id: int,
    entries: list[LedgerEntry],
    need: int | None,
    also: tuple[str, list] | None = None,
    first: tuple[str, list] | None = None,
) -> list[LedgerEntry] | None:
    """Move the tenant's balance by the entries' summed deltas and insert them (in order), in one statement.

    With `need`, only if at least `need` tokens are available. Returns the entries, saved (id and running
    balances set), or None when nothing was written: the balance was short or the account row is missing.
    `also`: (sql, params) of one more data-modifying statement of the same statement, e.g. the INSERT of the row
    the entries reference, as `INSERT ... SELECT ... FROM acc` so that it happens only when the balance moved
    (foreign keys are checked at the end of the statement). `first`: (sql, params) of a statement (a query, or a
    data-modifying one) that must return a row for anything to be written, e.g. the guarded UPDATE of that row
    (it runs first and takes that row's lock first, the lock order of billing.lock_objects). Their SQL must be the same text for the same
    shape (the statement is built once per shape).
    """
    fields = _columns()
    total_a = sum(entry.available_delta for entry in entries)
    total_h = sum(entry.held_delta for entry in entries)
    params = list(first[1]) if first else []
    params += [total_a, total_h, timezone.now(), tenant_id] + ([need] if need is not None else [])
    params += also[1] if also else []
    done_a = done_h = 0
    for entry in entries:
        # An entry's running balance: the final balance less the deltas of the entries written after it.
        done_a, done_h = done_a + entry.available_delta, done_h + entry.held_delta
        params += [done_a - total_a, done_h - total_h]
        params += [f.get_db_prep_save(f.pre_save(entry, add=True), connection) for f in fields]
    with connection.cursor() as cursor:
        sql = _statement(len(entries), need is not None, also[0] if also else "", first[0] if first else "")
        cursor.execute(sql, params)
        written = sorted(cursor.fetchall())  # ids are drawn in the ORDER BY's order
    if not written:
        return None
    for entry, (pk, available_after, held_after) in zip(entries, written, strict=True):
        entry.pk, entry.available_after, entry.held_after = pk, available_after, held_after
        entry._state.adding, entry._state.db = False, connection.alias
    return entries


@functools.cache
def account_exists_sql() -> str:
    """A condition for a caller's `first` statement: the tenant (one parameter) has a balance row, so that when
    `first` matches, the money write of the same statement matches too."""
    quote = connection.ops.quote_name
    account = BalanceAccount._meta
    return f"EXISTS (SELECT 1 FROM {quote(account.db_table)} WHERE {quote(account.get_field('tenant').column)} = %s)"  # noqa: S608
