"""Retry safety of the OpenAI endpoint: how long to wait for a job, which finished job a retry may reuse.

The official SDKs retry a timed-out or 5xx request (two retries by default) without an Idempotency-Key; they
send `x-stainless-retry-count` (0 on the first try) and `x-stainless-read-timeout` (their read timeout in
seconds). A retry attaches to its request's job (transcription_create(attach_identical=True)); the wait ends
just before the client would give up, and a timeout answer tells the SDK not to retry (`x-should-retry`).
"""

from __future__ import annotations

import math
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from portal.errors import DomainError
from transcription.models import Transcription
from transcription.selectors import transcription_await_final

# Answer this much before the client's read timeout, so that it reads our answer rather than timing out.
CLIENT_TIMEOUT_MARGIN_S = 1.0


def retry_count(request) -> int:
    try:
        return max(0, int(request.headers.get("x-stainless-retry-count", "0")))
    except ValueError:
        return 0


def replay_since(request) -> datetime | None:
    """For an SDK retry: the oldest finish time of an identical job whose result it may get (not billed again)."""
    if retry_count(request) == 0:
        return None
    return timezone.now() - timedelta(seconds=settings.OPENAI_RETRY_REPLAY_SECONDS)


def wait_seconds(request, *, started: float) -> float:
    """How long to wait for the job: until just before the client's read timeout, at most OPENAI_WAIT_SECONDS.

    `started` (time.monotonic()) is when the view began, the whole body already received: the time spent
    since then (probe, storage, hold) counts against the client's timeout too.
    """
    limit = float(settings.OPENAI_WAIT_SECONDS) - (time.monotonic() - started)
    try:
        client = float(request.headers.get("x-stainless-read-timeout", ""))
    except ValueError:
        return max(0.0, limit)
    if not math.isfinite(client) or client <= 0:
        return max(0.0, limit)
    margin = min(CLIENT_TIMEOUT_MARGIN_S, client * 0.3)
    return max(0.0, min(limit, client - margin - (time.monotonic() - started)))


async def wait_until_final(
    job: Transcription, *, timeout_s: float, replayed: bool = False, since: float | None = None
) -> Transcription:
    """The job once final, awaited in the event loop; 504 `timeout` (not to be retried) after timeout_s.

    `replayed`: the request attached to an existing job (the 504 then says so, like a success would).
    `since`: time.monotonic() taken before the job was created or found (see transcription_await_final).
    """
    # tenant_id, not tenant: loading a relation is a synchronous query, not allowed here. The job as submit
    # returned it; the handler's thread (LongPollApiMixin) gave its connection back before this wait.
    job = await transcription_await_final(tenant=job.tenant_id, job=job, timeout_s=timeout_s, since=since)
    if not job.is_final:
        raise DomainError(
            f"The transcription is still {job.status} after {timeout_s:.0f} s. It continues in the background: "
            f"poll GET /api/v1/transcriptions/{job.pk}, or send the same request again (it attaches to this "
            "transcription and is not charged twice).",
            code="timeout",
            status_code=504,
            headers={"x-should-retry": "false", **({"Idempotent-Replayed": "true"} if replayed else {})},
            transcription_id=str(job.pk),
        )
    return job
