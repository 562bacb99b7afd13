"""One-line hooks for a job's life: each records the Prometheus instruments and logs one line.

The services call them right after saving a state change (submitted, claimed, final), inside the transaction
that commits it; a transaction that then fails to commit (rare: the row is already written) is counted anyway.
"""

from __future__ import annotations

import logging

from django.utils import timezone

from portal import metrics
from transcription.models import Transcription

logger = logging.getLogger("transcription.jobs")


def _seconds(start, end) -> float | None:
    return max(0.0, (end - start).total_seconds()) if start and end else None


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds * 1000)


def _fields(t: Transcription, event: str, **more) -> dict:
    return {"event": event, "job_id": str(t.pk), "tenant": str(t.tenant_id), "model": t.model, **more}


def job_submitted(t: Transcription) -> None:
    metrics.JOBS_SUBMITTED.labels(source=t.source).inc()
    fields = _fields(t, "job_submitted", source=t.source, audio_s=round(t.probed_duration_s, 3),
                     held_tokens=t.held_tokens)  # fmt: skip
    logger.info("Job %s submitted: %.1f s of audio, %s tokens held", t.pk, fields["audio_s"], t.held_tokens,
                extra=fields)  # fmt: skip


def job_claimed(t: Transcription) -> None:
    """Call after the claim is saved (attempt counted, status running)."""
    wait = _seconds(t.enqueued_at or t.created_at, timezone.now())
    if wait is not None:
        metrics.JOB_QUEUE_WAIT.labels(model=t.model).observe(wait)
    fields = _fields(t, "job_claimed", attempt=t.attempt, queue_wait_ms=_ms(wait))
    logger.info("Job %s claimed (attempt %s) after %s ms in the queue", t.pk, t.attempt, fields["queue_wait_ms"],
                extra=fields)  # fmt: skip


def job_finished(t: Transcription) -> None:
    """Call once the job is saved in a final status (succeeded, failed or canceled)."""
    processing = None if t.cache_hit else _seconds(t.started_at, t.finished_at)
    end_to_end = _seconds(t.created_at, t.finished_at)
    metrics.JOBS_FINISHED.labels(status=t.status).inc()
    if t.status == Transcription.Status.FAILED:
        metrics.JOB_FAILURES.labels(code=t.error_code or "unknown").inc()
    if t.status == Transcription.Status.SUCCEEDED:
        if processing is not None:
            metrics.JOB_PROCESSING.labels(model=t.model).observe(processing)
        if end_to_end is not None:
            metrics.JOB_END_TO_END.labels(model=t.model).observe(end_to_end)
        metrics.AUDIO_SECONDS.labels(model=t.model).inc(t.duration_s or 0.0)
    fields = _fields(
        t, "job_finished", status=t.status, error_code=t.error_code or None, attempt=t.attempt,
        cache_hit=t.cache_hit, audio_s=t.duration_s, tokens=t.tokens, billed_tokens=t.billed_tokens,
        processing_ms=_ms(processing), end_to_end_ms=_ms(end_to_end), decode_ms=t.decode_ms, vad_ms=t.vad_ms,
        asr_ms=t.asr_ms,
    )  # fmt: skip
    logger.info("Job %s %s%s after %s ms (processing %s ms)", t.pk, t.status,
                f" ({t.error_code})" if t.error_code else "", fields["end_to_end_ms"], fields["processing_ms"],
                extra=fields)  # fmt: skip
