"""The transcription rows against their ledger entries: registered with billing's `ledger_verify` at start-up."""

from __future__ import annotations

from django.db.models import Count, Max, Min, Q, Sum

from billing.models import LedgerEntry
from transcription.models import Transcription

Status = Transcription.Status
OPEN = (Status.QUEUED, Status.RUNNING)


def _expected(status: str, held_tokens: int, billed: int) -> tuple[int, int, int]:
    """(tokens still held, debit entries, tokens debited) a transcription in this state must show in the ledger."""
    if status in OPEN:
        return held_tokens, 0, 0
    if status == Status.SUCCEEDED and billed:
        return 0, 1, billed
    return 0, 0, 0


def transcription_ledger_drift() -> list[str]:
    """Each transcription has one hold; open ones still hold `held_tokens`; a succeeded one is debited exactly its
    `billed_tokens` once; failed and canceled ones are not debited; finished ones hold nothing."""
    money = {
        row["transcription_id"]: row
        for row in LedgerEntry.objects.filter(transcription__isnull=False)
        .values("transcription_id")
        .annotate(
            first_tenant=Min("tenant_id"),
            last_tenant=Max("tenant_id"),
            holds=Count("id", filter=Q(kind=LedgerEntry.Kind.HOLD)),
            held=Sum("held_delta"),
            debits=Count("id", filter=Q(kind=LedgerEntry.Kind.DEBIT)),
            debited=Sum("held_delta", filter=Q(kind=LedgerEntry.Kind.DEBIT)),
        )
    }
    problems = []
    rows = Transcription.objects.values_list("pk", "tenant_id", "status", "held_tokens", "billed_tokens")
    for pk, tenant_id, status, held_tokens, billed in rows.iterator(chunk_size=2000):
        m = money.get(pk)
        if m is None:
            problems.append(f"transcription {pk} ({status}): no ledger entries (every transcription holds first)")
            continue
        if m["first_tenant"] != tenant_id or m["last_tenant"] != tenant_id:
            problems.append(f"transcription {pk}: ledger entries of another tenant than its own ({tenant_id})")
        if m["holds"] != 1:
            problems.append(f"transcription {pk}: {m['holds']} hold entries (exactly 1)")
        found = (m["held"] or 0, m["debits"], -(m["debited"] or 0))
        expected = _expected(status, held_tokens or 0, billed or 0)
        if found != expected:
            problems.append(
                f"transcription {pk} ({status}, held_tokens={held_tokens}, billed_tokens={billed}): ledger shows "
                f"{found[0]} still held, {found[1]} debit(s) of {found[2]} tokens; expected {expected[0]} held, "
                f"{expected[1]} debit(s) of {expected[2]}"
            )
    return problems
