"""Money writes. Each change of balance is one ledger entry written with the account row locked.

Callers that already hold a transaction (job creation, job finalize) call these inside it;
each function opens its own atomic block too, so it is safe on its own. The hold functions open theirs without a
savepoint (two round trips fewer per call): an error in them rolls back the caller's whole transaction.
"""

from __future__ import annotations

import math

from django.conf import settings
from django.db import IntegrityError, transaction

from billing.lock_objects import account_lock
from billing.models import BalanceAccount, LedgerEntry
from portal import metrics
from portal.errors import InsufficientBalance, InvalidRequest

Kind = LedgerEntry.Kind
# What a hold is for: a transcription (batch job) or a stream session; `reference` is that row's id.
REFERENCES = ("transcription", "stream_session")


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


def _write(*, account: BalanceAccount, kind: str, available_delta: int, held_delta: int = 0, **fields) -> LedgerEntry:
    if kind in LedgerEntry.TRANSCRIPTION_KINDS:
        fields.setdefault("actor_label", "system")
    account.available += available_delta
    account.held += held_delta
    entry = LedgerEntry.objects.create(
        tenant_id=account.tenant_id,
        kind=kind,
        available_delta=available_delta,
        held_delta=held_delta,
        available_after=account.available,
        held_after=account.held,
        **fields,
    )
    account.save(update_fields=["available", "held", "updated_at"])
    if kind == Kind.DEBIT:
        metrics.TOKENS_BILLED.inc(-held_delta)
    return entry


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
    account = account_lock(tenant_id=tenant.pk)
    return _write(
        account=account, kind=kind, available_delta=tokens, memo=memo.strip(), actor=actor, actor_label=actor_label
    )


def hold_place(*, tenant_id: int, reference, tokens: int, on: str = "transcription") -> LedgerEntry:
    """Move `tokens` from available to held for `reference` (the id of a transcription, or of what `on` names);
    402 if the balance is short."""
    # No savepoint (a round trip less inside the caller's transaction), so the 402 is raised after the block:
    # an exception leaving atomic(savepoint=False) would mark the caller's whole transaction for rollback.
    with transaction.atomic(savepoint=False):
        account = account_lock(tenant_id=tenant_id)
        if account.available >= tokens:
            return _write(
                account=account, kind=Kind.HOLD, available_delta=-tokens, held_delta=tokens, **_on(on, reference)
            )
    raise InsufficientBalance(
        f"This job needs up to {tokens} tokens but only {max(account.available, 0)} are available. "
        "Buy tokens in the dashboard (Billing) or via POST /api/v1/billing/checkout.",
        needed_tokens=tokens,
        available_tokens=account.available,
    )


def hold_extend(*, tenant_id: int, reference, tokens: int, on: str = "transcription", message: str = "") -> LedgerEntry:
    """Hold `tokens` more for a running transcription whose audio turned out longer than probed; 402 if short.

    The caller holds the transcription's row lock and adds `tokens` to its held amount in the same transaction.
    """
    if tokens <= 0:
        raise InvalidRequest("A hold extension must be a positive number of tokens.")
    with transaction.atomic(savepoint=False):  # the 402 after the block, as in hold_place
        account = account_lock(tenant_id=tenant_id)
        if account.available >= tokens:
            return _write(
                account=account, kind=Kind.HOLD_EXTEND, available_delta=-tokens, held_delta=tokens, **_on(on, reference)
            )
    raise InsufficientBalance(
        message
        or f"The audio is longer than its file header says; covering the rest needs up to {tokens} more tokens "
        f"but only {max(account.available, 0)} are available. You were not charged. Buy tokens in the "
        "dashboard (Billing) or via POST /api/v1/billing/checkout, then upload the file again.",
        needed_tokens=tokens,
        available_tokens=account.available,
    )


def hold_settle(
    *, tenant_id: int, reference, held: int, tokens: int, on: str = "transcription"
) -> tuple[int, LedgerEntry | None]:
    """Debit min(tokens, held) from the reference's hold and release the rest. Call with its row locked.

    Returns the billed tokens. The unique (transcription, kind) constraint make a second settle fail.
    """
    with transaction.atomic(savepoint=False):
        account = account_lock(tenant_id=tenant_id)
        billed = min(tokens, held)
        debit = None
        if billed > 0:
            debit = _write(
                account=account, kind=Kind.DEBIT, available_delta=0, held_delta=-billed, **_on(on, reference)
            )
        rest = held - billed
        if rest > 0:
            _write(account=account, kind=Kind.RELEASE, available_delta=rest, held_delta=-rest, **_on(on, reference))
        return billed, debit


def hold_release(*, tenant_id: int, reference, held: int, on: str = "transcription") -> LedgerEntry | None:
    """Give a failed or canceled transcription's whole hold back. Call with its row locked."""
    with transaction.atomic(savepoint=False):
        done = LedgerEntry.objects.filter(**_on(on, reference), kind__in=[Kind.RELEASE, Kind.DEBIT]).exists()
        if held <= 0 or done:
            return None
        account = account_lock(tenant_id=tenant_id)
        return _write(account=account, kind=Kind.RELEASE, available_delta=held, held_delta=-held, **_on(on, reference))


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
    try:
        with transaction.atomic():
            account = account_lock(tenant_id=tenant.pk)
            if LedgerEntry.objects.filter(kind=kind, external_ref=external_ref).exists():
                return None
            return _write(
                account=account,
                kind=kind,
                available_delta=tokens,
                external_ref=external_ref,
                memo=memo,
                actor_label=actor_label,
            )
    except IntegrityError:
        # A concurrent writer won the unique (kind, external_ref) race.
        return None
