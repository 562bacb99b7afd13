"""Stream session writes: open with a hold, extend it minute by minute, count finals, settle once at the end.

Money rules (PRODUCT.md): a stream holds ceil(60 s x MAX_TOKENS_PER_SECOND) when it starts and one more minute
before its audio passes what is held; each final delivered is counted with token rule v1; at the end the hold
settles into ONE debit of min(tokens, held) and the rest is released; nothing is charged for partials.
Lock order, as for transcriptions: the session row, then the account.
"""

from __future__ import annotations

import math
import os
import socket
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from billing import tokens as token_rule
from billing.lock_objects import account_lock
from billing.services import hold_amount, hold_extend, hold_place, hold_settle
from portal.errors import DomainError, InsufficientBalance
from streaming.models import StreamSession

HOLD_WINDOW_S = 60.0  # each hold (and extension) covers this much audio
WORKER = f"{socket.gethostname()}:{os.getpid()}"


class TooManyStreams(DomainError):
    code = "rate_limited"
    status_code = 429


def minute_hold(*, model: str) -> int:
    """ceil(60 s x MAX_TOKENS_PER_SECOND for the model): what one minute of stream holds."""
    return hold_amount(duration_s=HOLD_WINDOW_S, model=model)


def _locked(session_id) -> StreamSession:
    return StreamSession.objects.select_for_update().get(pk=session_id)


def stream_session_open(*, caller, protocol: str, mode: str, wav_name: str = "", model: str = "") -> StreamSession:
    """Open a session for the caller's tenant (an API key, or a dashboard user) and hold its first minute.

    TooManyStreams when the key (or user) already has STREAM_MAX_SESSIONS_PER_KEY open sessions (counted under
    the account lock, so concurrent opens cannot overshoot); InsufficientBalance when the first minute is not
    covered (the refused session is kept, closed, for the tenant's records).
    """
    tokens = minute_hold(model=model)
    tenant_id = caller.tenant.pk
    fields = {"tenant_id": tenant_id, "api_key": caller.api_key, "started_by": caller.user, "protocol": protocol}
    fields.update({"mode": mode[:16], "wav_name": wav_name[:255], "model": model[:255], "worker": WORKER})
    with transaction.atomic():
        account = account_lock(tenant_id=tenant_id)
        mine = {"api_key": caller.api_key} if caller.api_key is not None else {"started_by": caller.user}
        open_now = StreamSession.objects.filter(**mine, status=StreamSession.Status.OPEN).count()
        limit = settings.STREAM_MAX_SESSIONS_PER_KEY
        if open_now >= limit:
            raise TooManyStreams(f"This API key already has {open_now} open streams (limit {limit}).")
        if account.available >= tokens:
            session = StreamSession.objects.create(**fields, held_tokens=tokens, heartbeat_at=timezone.now())
            hold_place(tenant_id=tenant_id, reference=session.pk, tokens=tokens, on="stream_session")
            return session
    refused = StreamSession.objects.create(
        **fields,
        status=StreamSession.Status.CLOSED,
        close_reason="insufficient_balance",
        close_message=f"The first minute needs {tokens} tokens.",
        ended_at=timezone.now(),
    )
    raise InsufficientBalance(
        f"A stream holds {tokens} tokens per minute of audio; this tenant has fewer available. Buy tokens in "
        "the dashboard (Billing) or via POST /api/v1/billing/checkout.",
        needed_tokens=tokens,
        stream_id=str(refused.pk),
    )


def stream_session_extend(*, session_id, model: str = "") -> StreamSession:
    """Hold one more minute; InsufficientBalance when the balance cannot cover it (nothing changes then)."""
    tokens = minute_hold(model=model)
    with transaction.atomic():
        session = _locked(session_id)
        hold_extend(
            tenant_id=session.tenant_id,
            reference=session.pk,
            tokens=tokens,
            on="stream_session",
            message=f"The next minute of this stream needs {tokens} more tokens; the balance cannot cover it.",
        )
        session.held_tokens += tokens
        session.heartbeat_at = timezone.now()
        session.save(update_fields=["held_tokens", "heartbeat_at"])
        return session


def stream_session_count(*, session_id, text: str, audio_seconds: float) -> int:
    """Count a final delivered to the client (rule v1) and the audio so far; returns the final's tokens."""
    counted = token_rule.count(text)
    with transaction.atomic():
        session = _locked(session_id)
        session.tokens += counted
        session.finals += 1
        session.audio_seconds = round(max(session.audio_seconds, audio_seconds), 3)
        session.heartbeat_at = timezone.now()
        session.save(update_fields=["tokens", "finals", "audio_seconds", "heartbeat_at"])
    return counted


def stream_session_heartbeat(*, session_id, audio_seconds: float) -> None:
    StreamSession.objects.filter(pk=session_id, status=StreamSession.Status.OPEN).update(
        heartbeat_at=timezone.now(), audio_seconds=round(audio_seconds, 3)
    )


def stream_session_close(*, session_id, reason: str, message: str = "", audio_seconds: float | None = None):
    """Settle the hold into one debit of min(tokens, held), release the rest, and close. Idempotent."""
    with transaction.atomic():
        session = _locked(session_id)
        if session.status == StreamSession.Status.CLOSED:
            return session
        billed, _ = hold_settle(
            tenant_id=session.tenant_id,
            reference=session.pk,
            held=session.held_tokens,
            tokens=session.tokens,
            on="stream_session",
        )
        session.billed_tokens = billed
        session.held_tokens = 0
        session.status = StreamSession.Status.CLOSED
        session.close_reason = reason[:32]
        session.close_message = message[:255]
        session.ended_at = timezone.now()
        if audio_seconds is not None:
            session.audio_seconds = round(max(session.audio_seconds, audio_seconds), 3)
        session.save(
            update_fields=[
                "billed_tokens", "held_tokens", "status", "close_reason", "close_message", "ended_at", "audio_seconds"
            ]
        )  # fmt: skip
        return session


def stream_sessions_sweep(*, stale_after_s: float = 180.0) -> int:
    """Close sessions whose stream worker stopped beating (killed, machine lost): settle what was delivered."""
    cutoff = timezone.now() - timedelta(seconds=stale_after_s)
    stale = StreamSession.objects.filter(status=StreamSession.Status.OPEN, heartbeat_at__lt=cutoff)
    closed = 0
    for session_id in list(stale.values_list("pk", flat=True)[:500]):
        stream_session_close(session_id=session_id, reason="worker_lost", message="The stream worker stopped.")
        closed += 1
    return closed


def covered_seconds(session: StreamSession) -> float:
    """Audio seconds the session's hold covers (whole minutes)."""
    per_minute = max(1, minute_hold(model=session.model))
    return math.floor(session.held_tokens / per_minute) * HOLD_WINDOW_S
