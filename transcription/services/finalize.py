"""A transcription's result stored and its money settled, exactly once, only if the worker's attempt is current.

On PostgreSQL, when the worker has the row as it claimed it (a batch has), the row's final write and the settle are
one statement of their own (billing.hold_settle_with_row): the write is guarded by the status, attempt and hold the
worker claimed, and the money moves only if that write matched. One round trip instead of five (BEGIN, the row's
lock, its write, the settle, COMMIT), and the tenant's balance row, which every submit and finalize of the tenant
writes, is locked only while that statement runs (issue 13). When the guard does not match (canceled, re-claimed,
the hold extended since) or elsewhere (SQLite), the transaction reads the row's state under its lock and decides.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import connection, transaction
from django.utils import timezone

from billing import tokens as token_rule
from billing.services import billed_amount, hold_settle, hold_settle_with_row
from transcription import instruments
from transcription.models import Transcription
from transcription.services.common import Status, webhook_enqueue
from transcription.services.rows import transcription_lock_state, transcription_write, transcription_write_guarded

if TYPE_CHECKING:
    from transcription.services.lifecycle import Claim

FINAL_FIELDS = [
    "billed_tokens", "tokens", "token_rule", "text", "segments", "language", "duration_s", "truncated", "decode_ms",
    "vad_ms", "asr_ms", "speech_s", "model", "warnings", "status", "progress", "lease_expires_at", "finished_at",
]  # fmt: skip


def transcription_finalize(
    *,
    claim: Claim,
    text: str,
    segments: list[dict],
    language: str,
    duration_s: float,
    truncated: bool = False,
    decode_ms: int | None = None,
    vad_ms: int | None = None,
    asr_ms: int | None = None,
    speech_s: float | None = None,
    model: str | None = None,
    warnings: list[str] | None = None,
    row: Transcription | None = None,
) -> bool:
    """Store the result and settle the money, only if the attempt is current (True when it was).

    `model` is what the worker actually ran (recorded on the row; cache hits match on it). `row`: the row as this
    attempt claimed it (the worker's batch has it): what a running attempt cannot change (tenant, times, webhook)
    is taken from it, and its status, attempt and hold are checked again by the write. Without it, the row is
    read whole.
    """
    tokens = token_rule.count(text)
    result = {
        "text": text, "segments": segments, "language": language, "duration_s": duration_s, "truncated": truncated,
        "decode_ms": decode_ms, "vad_ms": vad_ms, "asr_ms": asr_ms, "speech_s": speech_s, "model": model,
        "warnings": warnings,
    }  # fmt: skip
    if row is not None and row.attempt == claim.attempt and row.status == Status.RUNNING:
        if _finalize_at_once(row, tokens=tokens, result=result):
            return True
    with transaction.atomic():
        status, attempt, held = transcription_lock_state(transcription_id=claim.transcription_id)
        if status != Status.RUNNING or attempt != claim.attempt:
            return False
        t = row if row is not None and row.attempt == attempt else Transcription.objects.get(pk=claim.transcription_id)
        t.status, t.attempt, t.held_tokens = status, attempt, held
        _set_result(t, tokens=tokens, held=held, **result)
        transcription_write(t, FINAL_FIELDS)
        instruments.job_finished(t)
        # The money last: the tenant's balance row is locked only from here to the commit.
        hold_settle(tenant_id=t.tenant_id, reference=t.pk, held=held, tokens=tokens)
        if t.webhook_url:
            transaction.on_commit(lambda: webhook_enqueue(transcription_id=t.pk))
    return True


def _finalize_at_once(t: Transcription, *, tokens: int, result: dict) -> bool:
    """PostgreSQL: the guarded write and the settle in one statement; False when it wrote nothing."""
    if connection.vendor != "postgresql":
        return False
    status, attempt, held = t.status, t.attempt, t.held_tokens
    _set_result(t, tokens=tokens, held=held, **result)
    write = transcription_write_guarded(t, FINAL_FIELDS, status=status, attempt=attempt, held=held)
    settled = hold_settle_with_row(tenant_id=t.tenant_id, reference=t.pk, held=held, tokens=tokens, row=write)
    if settled is None:
        t.status = status  # as claimed: the transaction path reads the row again and decides
        return False
    instruments.job_finished(t)
    if t.webhook_url:
        transaction.on_commit(lambda: webhook_enqueue(transcription_id=t.pk))
    return True


def _set_result(t: Transcription, *, tokens: int, held: int, **result) -> None:
    t.billed_tokens = billed_amount(held=held, tokens=tokens)
    t.tokens = tokens
    t.token_rule = token_rule.RULE_VERSION
    t.text, t.segments, t.language = result["text"], result["segments"], result["language"]
    t.duration_s, t.truncated = result["duration_s"], result["truncated"]
    t.decode_ms, t.vad_ms, t.asr_ms = result["decode_ms"], result["vad_ms"], result["asr_ms"]
    t.speech_s = result["speech_s"]
    t.model = result["model"] or t.model
    t.warnings = list(result["warnings"] or [])
    t.status = Status.SUCCEEDED
    t.progress = 1.0
    t.lease_expires_at = None
    t.finished_at = timezone.now()
