"""Money writes. Each change of balance is one ledger entry written with the account row locked.

On PostgreSQL the lock, the entries and the new balance are one statement (billing.balance_sql): one round trip
under the tenant's balance-row lock instead of three. SQLite (which serialises writers anyway) keeps the ORM path.

Callers that already hold a transaction (job creation, job finalize) call these inside it;
each function opens its own atomic block too, so it is safe on its own. The hold functions open theirs without a
savepoint (two round trips fewer per call): an error in them rolls back the caller's whole transaction.
"""

from __future__ import annotations

import math

from django.conf import settings
from django.db import IntegrityError, connection, transaction

from billing.balance_sql import balance_move_returning
from billing.lock_objects import account_lock
from billing.models import BalanceAccount, LedgerEntry
from portal import metrics
from portal.errors import InsufficientBalance, InvalidRequest

Kind = LedgerEntry.Kind
# What a hold is for: a transcription (batch job) or a stream session; `reference` is that row's id.
REFERENCES = ("transcription", "stream_session")
# Money writes are one statement on PostgreSQL (billing.balance_sql); False forces the ORM path there too (tests
# compare the two).
SINGLE_STATEMENT = True


def _on(on: str, reference) -> dict:
    if on not in REFERENCES:
        raise InvalidRequest(f"Unknown hold reference {on!r}.")
    return {f"{on}_id": reference}


def account_ensure(*, tenant) -> BalanceAccount:
    account, _ = BalanceAccount.objects.get_or_create(tenant=tenant)
    return account


def hold_amount(*, duration_s: float, model: str = "") -> int:
    """The quoted maximum for a job: ceil(duration_s x MAX_TOKENS_PER_SECOND for the model)."""
    rate = settings.MAX_TOKENS_PER_SECOND_BY_MODEL.get(model, settings.MAX_TOKENS_PER_SECOND)
    return max(1, math.ceil(duration_s * rate))


def _entry(*, kind: str, available_delta: int, held_delta: int = 0, **fields) -> LedgerEntry:
    if kind in LedgerEntry.TRANSCRIPTION_KINDS:
        fields.setdefault("actor_label", "system")
    return LedgerEntry(kind=kind, available_delta=available_delta, held_delta=held_delta, **fields)


def _write(*, tenant_id: int, entries: list[LedgerEntry], need: int | None = None) -> tuple[list[LedgerEntry], int]:
    """Write `entries` (unsaved, in order) and move the balance by their deltas; with `need`, only if at least that
    many tokens are available. Returns the saved entries (none when short) and the available balance then.

    On PostgreSQL one statement (billing.balance_sql). When it wrote nothing (no account row yet, or short) and on
    SQLite, the ORM path decides with the row locked, so a 402 quotes the balance it was refused against.
    """
    for entry in entries:
        entry.tenant_id = tenant_id
    if SINGLE_STATEMENT and connection.vendor == "postgresql":
        written = balance_move_returning(tenant_id=tenant_id, entries=entries, need=need)
        if written is not None:
            return _counted(written), written[-1].available_after
    account = account_lock(tenant_id=tenant_id)
    if need is not None and account.available < need:
        return [], account.available
    for entry in entries:
        account.available += entry.available_delta
        account.held += entry.held_delta
        entry.available_after, entry.held_after = account.available, account.held
        entry.save(force_insert=True)
    account.save(update_fields=["available", "held", "updated_at"])
    return _counted(entries), account.available


def _counted(entries: list[LedgerEntry]) -> list[LedgerEntry]:
    for entry in entries:
        if entry.kind == Kind.DEBIT:
            metrics.TOKENS_BILLED.inc(-entry.held_delta)
    return entries


@transaction.atomic
def tokens_grant(
    *, tenant, tokens: int, memo: str, actor=None, actor_label: str = "", kind: str = Kind.GRANT
) -> LedgerEntry:
    """Grant (positive) or adjust (either sign) a balance by hand; a memo is required."""
    if not (memo or "").strip():
        raise InvalidRequest("A memo is required for grants and adjustments.")
    if kind not in (Kind.GRANT, Kind.ADJUSTMENT):
        raise InvalidRequest(f"Unsupported manual entry kind {kind!r}.")
    if kind == Kind.GRANT and tokens <= 0:
        raise InvalidRequest("A grant must be a positive number of tokens; use an adjustment to remove tokens.")
    if tokens == 0:
        raise InvalidRequest("An adjustment of 0 tokens changes nothing.")
    entry = _entry(kind=kind, available_delta=tokens, memo=memo.strip(), actor=actor, actor_label=actor_label)
    return _write(tenant_id=tenant.pk, entries=[entry])[0][0]


def hold_place(*, tenant_id: int, reference, tokens: int, on: str = "transcription") -> LedgerEntry:
    """Move `tokens` from available to held for `reference` (the id of a transcription, or of what `on` names);
    402 if the balance is short."""
    hold = _entry(kind=Kind.HOLD, available_delta=-tokens, held_delta=tokens, **_on(on, reference))
    # No savepoint (a round trip less inside the caller's transaction), so the 402 is raised after the block:
    # an exception leaving atomic(savepoint=False) would mark the caller's whole transaction for rollback.
    with transaction.atomic(savepoint=False):
        written, available = _write(tenant_id=tenant_id, entries=[hold], need=tokens)
        if written:
            return hold
    raise InsufficientBalance(
        f"This job needs up to {tokens} tokens but only {max(available, 0)} are available. "
        "Buy tokens in the dashboard (Billing) or via POST /api/v1/billing/checkout.",
        needed_tokens=tokens,
        available_tokens=available,
    )


def hold_place_with_row(
    *,
    tenant_id: int,
    reference,
    tokens: int,
    row: tuple[str, list],
    on: str = "transcription",
    only_if: tuple[str, list] | None = None,
):
    """PostgreSQL: insert the hold's row and place the hold in one statement, its own transaction when called
    outside one (no BEGIN and COMMIT round trips, and the balance row is locked only while that statement runs).

    `row`: (sql, params) of `INSERT INTO <the row's table> ... SELECT ... FROM acc` (see balance_move_returning).
    `only_if`: (sql, params) of a query that must return a row for anything to be written (checked in the same
    statement). Returns the hold entry, or None when nothing was written (the balance is short, there is no
    account row yet, `only_if` found nothing, or the database is not PostgreSQL): the caller then goes the
    usual way (hold_place), which answers 402.
    """
    if not (SINGLE_STATEMENT and connection.vendor == "postgresql"):
        return None
    hold = _entry(kind=Kind.HOLD, available_delta=-tokens, held_delta=tokens, **_on(on, reference))
    hold.tenant_id = tenant_id
    written = _own_statement(
        lambda: balance_move_returning(tenant_id=tenant_id, entries=[hold], need=tokens, also=row, first=only_if)
    )
    return _counted(written)[0] if written else None


def _own_statement(write):
    """Run a one-statement write; inside a caller's transaction in a savepoint, so that an error in it (an
    IntegrityError the caller handles) does not leave the caller's transaction unusable."""
    if connection.in_atomic_block:
        with transaction.atomic():
            return write()
    return write()


def hold_extend(*, tenant_id: int, reference, tokens: int, on: str = "transcription", message: str = "") -> LedgerEntry:
    """Hold `tokens` more for a running transcription whose audio turned out longer than probed; 402 if short.

    The caller holds the transcription's row lock and adds `tokens` to its held amount in the same transaction.
    """
    if tokens <= 0:
        raise InvalidRequest("A hold extension must be a positive number of tokens.")
    extension = _entry(kind=Kind.HOLD_EXTEND, available_delta=-tokens, held_delta=tokens, **_on(on, reference))
    with transaction.atomic(savepoint=False):  # the 402 after the block, as in hold_place
        written, available = _write(tenant_id=tenant_id, entries=[extension], need=tokens)
        if written:
            return extension
    raise InsufficientBalance(
        message
        or f"The audio is longer than its file header says; covering the rest needs up to {tokens} more tokens "
        f"but only {max(available, 0)} are available. You were not charged. Buy tokens in the "
        "dashboard (Billing) or via POST /api/v1/billing/checkout, then upload the file again.",
        needed_tokens=tokens,
        available_tokens=available,
    )


def billed_amount(*, held: int, tokens: int) -> int:
    """What settling a hold of `held` for a result of `tokens` output tokens bills: the tokens, at most the hold."""
    return min(tokens, held)


def _settle_entries(*, reference, held: int, tokens: int, on: str) -> tuple[int, LedgerEntry | None, list]:
    billed = billed_amount(held=held, tokens=tokens)
    debit = _entry(kind=Kind.DEBIT, available_delta=0, held_delta=-billed, **_on(on, reference)) if billed > 0 else None
    rest = held - billed
    release = _entry(kind=Kind.RELEASE, available_delta=rest, held_delta=-rest, **_on(on, reference))
    return billed, debit, [e for e in (debit, release if rest > 0 else None) if e is not None]


def hold_settle_with_row(
    *, tenant_id: int, reference, held: int, tokens: int, row: tuple[str, list], on: str = "transcription"
) -> tuple[int, LedgerEntry | None] | None:
    """PostgreSQL: the hold's row write (`row`: (sql, params) of an UPDATE guarded by what the caller read of it,
    RETURNING a row when it matched) and the settle of hold_settle in one statement, its own transaction when
    called outside one: no BEGIN, row lock, COMMIT round trips, and the balance row is locked only while the
    statement runs. None when nothing was written (the guard did not match, the tenant has no account row, or
    not PostgreSQL): the caller then goes the usual way, with the row locked, and decides."""
    if not (SINGLE_STATEMENT and connection.vendor == "postgresql"):
        return None
    billed, debit, entries = _settle_entries(reference=reference, held=held, tokens=tokens, on=on)
    if not entries:
        return None
    for entry in entries:
        entry.tenant_id = tenant_id
    written = _own_statement(lambda: balance_move_returning(tenant_id=tenant_id, entries=entries, need=None, first=row))
    if not written:
        return None
    _counted(written)
    return billed, debit


def hold_settle(
    *, tenant_id: int, reference, held: int, tokens: int, on: str = "transcription"
) -> tuple[int, LedgerEntry | None]:
    """Debit min(tokens, held) from the reference's hold and release the rest. Call with its row locked.

    Returns the billed tokens and the debit entry (None when nothing was billed); both entries are one write.
    The unique (transcription, kind) constraint makes a second settle fail.
    """
    billed, debit, entries = _settle_entries(reference=reference, held=held, tokens=tokens, on=on)
    if entries:
        with transaction.atomic(savepoint=False):
            _write(tenant_id=tenant_id, entries=entries)
    return billed, debit


def hold_release(*, tenant_id: int, reference, held: int, on: str = "transcription") -> LedgerEntry | None:
    """Give a failed or canceled transcription's whole hold back. Call with its row locked."""
    if held <= 0:
        return None
    with transaction.atomic(savepoint=False):
        if LedgerEntry.objects.filter(**_on(on, reference), kind__in=[Kind.RELEASE, Kind.DEBIT]).exists():
            return None
        release = _entry(kind=Kind.RELEASE, available_delta=held, held_delta=-held, **_on(on, reference))
        return _write(tenant_id=tenant_id, entries=[release])[0][0]


def external_entry_write(
    *, tenant, kind: str, tokens: int, external_ref: str, memo: str = "", actor_label: str = "stripe"
) -> LedgerEntry | None:
    """Credit (top-up, dispute reversal) or reverse (refund, dispute) tokens for an external object, at most once.

    Returns None when an entry of this kind for `external_ref` already exists.
    """
    if kind not in LedgerEntry.EXTERNAL_KINDS:
        raise InvalidRequest(f"Unsupported external entry kind {kind!r}.")
    if not external_ref:
        raise InvalidRequest("An external reference is required.")
    entry = _entry(kind=kind, available_delta=tokens, external_ref=external_ref, memo=memo, actor_label=actor_label)
    try:
        with transaction.atomic():
            if LedgerEntry.objects.filter(kind=kind, external_ref=external_ref).exists():
                return None
            return _write(tenant_id=tenant.pk, entries=[entry])[0][0]
    except IntegrityError:
        # A concurrent writer of the same object committed after our check: the unique (kind, external_ref) refused ours.
        return None
