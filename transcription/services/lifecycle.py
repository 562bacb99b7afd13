"""A transcription's life on the worker side: claim, heartbeat, recognize, finalize or fail; cancel, delete, sweep.

The row is the truth. A task claims a transcription under a row lock (attempt + lease), and its result is
stored only if its attempt is still current, in one transaction with the money (hold -> debit).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from billing.services import hold_amount, hold_extend, hold_release
from portal.errors import Conflict, DomainError
from transcription import instruments
from transcription.models import Transcription
from transcription.services.common import (
    LeaseLost,
    Status,
    audio_discard,
    segment_dicts,
    transcription_lock,
    webhook_enqueue,
)
from transcription.services.finalize import FINAL_FIELDS, transcription_finalize  # noqa: F401 (here before)
from transcription.services.rows import (
    transcription_locked_row,
    transcription_runnable,
    transcriptions_claim_write,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claim:
    transcription_id: object
    attempt: int


def _lease_until():
    return timezone.now() + timedelta(seconds=settings.JOB_LEASE_SECONDS)


def _runnable(status: str, lease_expires_at, now) -> bool:
    return status == Status.QUEUED or (
        status == Status.RUNNING and lease_expires_at is not None and lease_expires_at < now
    )


def transcription_claim(*, transcription_id) -> Claim | None:
    """Take the transcription for one attempt under a row lock; None if there is nothing to do."""
    claimed = claim_with_row(transcription_id=transcription_id)
    return claimed[0] if claimed else None


def claim_with_row(*, transcription_id) -> tuple[Claim, Transcription] | None:
    """transcription_claim(), with the row as claimed.

    A look without the lock first: the queued task of a transcription a batch already took costs one cheap read.
    """
    if not transcription_runnable(transcription_id=transcription_id):
        return None
    with transaction.atomic():
        t = transcription_locked_row(transcription_id=transcription_id)
        now = timezone.now()
        if t is None or not _runnable(t.status, t.lease_expires_at, now):
            return None
        if t.attempt >= settings.JOB_MAX_ATTEMPTS:
            _fail_locked(t, "worker_lost", _attempts_message(t))
            return None
        t.lease_expires_at = _lease_until()
        transcriptions_claim_write([t.pk], lease=t.lease_expires_at, now=now)  # the same write as a batch's claim
        t.attempt += 1
        t.status = Status.RUNNING
        t.progress = 0.0
        t.segments = []  # what this attempt recognized so far (a streamed answer reads it)
        t.started_at = t.started_at or now
        instruments.job_claimed(t)
        claim = Claim(transcription_id=t.pk, attempt=t.attempt)
        beat_start(claim)
        return claim, t


HEARTBEAT_MIN_INTERVAL_S = 0.5
# (id, attempt) -> (when progress was last written, how many segments the row holds), for the transcriptions
# this process runs now
_last_beat: dict = {}
MAX_TRACKED_BEATS = 1024


def beat_start(claim: Claim) -> None:
    if len(_last_beat) >= MAX_TRACKED_BEATS:
        _last_beat.clear()  # attempts that ended without beat_end (a crash): forget them all
    _last_beat[(claim.transcription_id, claim.attempt)] = (time.monotonic(), 0)


def beat_end(claim: Claim) -> None:
    _last_beat.pop((claim.transcription_id, claim.attempt), None)


def transcription_heartbeat(*, claim: Claim, progress: float, force: bool = False, segments: list | None = None):
    """Record progress and extend the lease; raises LeaseLost if this attempt is no longer current.

    Writes at most every HEARTBEAT_MIN_INTERVAL_S per transcription (progress is for humans; the lease is far
    longer); `segments` recognized so far go with it when there are new ones (streamed answers show them).
    """
    key = (claim.transcription_id, claim.attempt)
    beat, written = _last_beat.get(key, (0.0, 0))
    if not force:
        if time.monotonic() - beat < HEARTBEAT_MIN_INTERVAL_S:
            return
        beat = time.monotonic()  # a forced beat (lease renewal) does not delay the next progress report
    fields = {"progress": min(max(progress, 0.0), 0.99), "lease_expires_at": _lease_until()}
    if segments is not None and len(segments) != written:
        fields["segments"], written = list(segments), len(segments)
    _last_beat[key] = (beat, written)
    query = Transcription.objects.filter(pk=claim.transcription_id, attempt=claim.attempt, status=Status.RUNNING)
    if not query.update(**fields):
        raise LeaseLost(str(claim.transcription_id))


# Decoders emit a little more than the packets promise (priming, resampler tails): that much is not re-held.
HOLD_SLACK_S = 0.5


def transcription_hold_cover(*, claim: Claim, duration_s: float) -> int:
    """Make the hold cover `duration_s` of decoded audio before it is recognized; returns the hold.

    Raises LeaseLost when the attempt is no longer current and InsufficientBalance (402: the transcription
    then fails uncharged) when the tenant cannot cover the extra tokens.
    """
    with transaction.atomic():
        t = transcription_lock(transcription_id=claim.transcription_id)
        if t.status != Status.RUNNING or t.attempt != claim.attempt:
            raise LeaseLost(str(claim.transcription_id))
        needed = hold_amount(duration_s=duration_s, model=t.model)
        if needed > t.held_tokens:
            hold_extend(tenant_id=t.tenant_id, reference=t.pk, tokens=needed - t.held_tokens)
            logger.warning(
                "Transcription %s: decoded %.1f s but the upload probed %.1f s; hold extended %s -> %s tokens",
                t.pk, duration_s, t.probed_duration_s or 0.0, t.held_tokens, needed,
            )  # fmt: skip
            t.held_tokens = needed
            t.save(update_fields=["held_tokens"])
        return t.held_tokens


def _hold_guard(claim: Claim, t: Transcription):
    """The pipeline's `admit` callback: extend the hold only when decoding passes what it already covers."""
    covered = {"tokens": t.held_tokens}

    def admit(decoded_s: float) -> None:
        if hold_amount(duration_s=max(0.0, decoded_s - HOLD_SLACK_S), model=t.model) > covered["tokens"]:
            covered["tokens"] = transcription_hold_cover(claim=claim, duration_s=decoded_s)

    return admit


LOAD_RENEW_AFTER_S = 0.5


def engine_ready(claim: Claim):
    """The engine with its model in memory. A first model load can take longer than a short lease: renew it once
    the model has loaded (LeaseLost here means the sweeper already gave the transcription to another attempt).
    A warm worker's load() returns at once and costs no write."""
    from transcription.engines import get_engine

    engine = get_engine()
    started = time.monotonic()
    engine.load()
    if time.monotonic() - started > LOAD_RENEW_AFTER_S:
        transcription_heartbeat(claim=claim, progress=0.05, force=True)
    return engine


def recognition_steps(claim: Claim, t: Transcription, *, engine_name: str, window_s: float):
    """The one recognition path (decode in chunks of `window_s`, VAD, windows) on the stored audio, as steps
    (pipeline.recognize_file_steps) that the worker's batch drives. The audio is opened through the storage
    API (a local file, or the object streamed from the bucket) when the first step runs, and closed with them."""
    from transcription import pipeline
    from transcription.engines.base import TranscribeOptions
    from transcription.services.speakers import speaker_track_for

    opts = t.options
    options = TranscribeOptions(
        language=opts.get("language", "auto"), itn=opts.get("itn", True), vad=opts.get("vad", True),
        hotwords=tuple(opts.get("hotwords", [])), word_timestamps=bool(opts.get("word_timestamps")), scores=bool(opts.get("scores")),
    )  # fmt: skip
    if not t.audio.name:
        raise FileNotFoundError(f"Transcription {t.pk} has no stored audio")
    partial: list[dict] = []
    with t.audio.storage.open(t.audio.name, "rb") as audio:
        return (
            yield from pipeline.recognize_file_steps(
                audio,
                engine_name=engine_name,
                options=options,
                progress=lambda f: transcription_heartbeat(claim=claim, progress=0.05 + 0.9 * f, segments=partial),
                max_seconds=settings.MAX_AUDIO_SECONDS,
                expected_s=t.probed_duration_s or None,
                chunk_seconds=window_s,
                admit=_hold_guard(claim, t),
                recognized=lambda found: partial.extend(segment_dicts(found)),
                speakers=speaker_track_for(tenant_id=t.tenant_id, options=opts),
            )
        )


UNAVAILABLE_MESSAGE = (
    "The speech model is not available on the worker right now. You were not charged; "
    "retry later, or contact support with the transcription id."
)
CRASH_MESSAGE = (
    "Recognition failed on the worker. You were not charged; retry, or contact support with the transcription id."
)


def failure_of(exc: BaseException, transcription_id, attempt: int) -> tuple[str, str] | None:
    """(code, message) for an exception raised while recognizing; None when the attempt just stops."""
    from django.core.exceptions import ImproperlyConfigured

    from transcription.engines.base import EngineUnavailable

    if isinstance(exc, LeaseLost):
        return None
    if isinstance(exc, EngineUnavailable | ImproperlyConfigured):
        logger.error("Transcription %s: the ASR model is unavailable: %s", transcription_id, exc)
        return "model_unavailable", UNAVAILABLE_MESSAGE
    if isinstance(exc, DomainError):
        return exc.code, exc.message
    if isinstance(exc, FileNotFoundError):
        return "audio_missing", "The stored audio is gone; upload it again."
    logger.error("Transcription %s attempt %s crashed", transcription_id, attempt, exc_info=exc)
    return "internal_error", CRASH_MESSAGE


def transcription_run(*, transcription_id) -> str:
    """Claim the transcription and recognize it, with the other ready ones this worker can batch with it
    (services.batching). Returns what happened to this one (for logs and tests)."""
    claimed = claim_with_row(transcription_id=transcription_id)
    if claimed is None:
        return "skipped"
    from transcription.services.batching import batch_run

    return batch_run(*claimed)


def _fail_locked(t: Transcription, code: str, message: str) -> None:
    hold_release(tenant_id=t.tenant_id, reference=t.pk, held=t.held_tokens)
    t.status = Status.FAILED
    t.error_code = code
    t.error_message = message
    t.lease_expires_at = None
    t.finished_at = timezone.now()
    t.save(update_fields=["status", "error_code", "error_message", "lease_expires_at", "finished_at"])
    instruments.job_finished(t)
    if t.webhook_url:
        transaction.on_commit(lambda: webhook_enqueue(transcription_id=t.pk))


def transcription_fail(*, transcription_id, code: str, message: str, attempt: int | None = None) -> bool:
    """Fail the transcription and release its whole hold (a failed transcription costs nothing)."""
    with transaction.atomic():
        t = transcription_lock(transcription_id=transcription_id)
        if t.is_final or (attempt is not None and t.attempt != attempt):
            return False
        _fail_locked(t, code, message)
        return True


def _attempts_message(t: Transcription) -> str:
    return (
        f"The worker processing this transcription stopped {t.attempt} times. You were not charged; "
        "retry the upload, or contact support with the transcription id."
    )


def transcription_cancel(*, transcription: Transcription) -> Transcription:
    with transaction.atomic():
        t = transcription_lock(transcription_id=transcription.pk)
        if t.status == Status.CANCELED:
            return t
        if t.is_final:
            raise Conflict(
                f"The transcription already {t.status}; only queued or running ones can be canceled.",
                code="transcription_finished",
            )
        hold_release(tenant_id=t.tenant_id, reference=t.pk, held=t.held_tokens)
        t.status = Status.CANCELED
        t.lease_expires_at = None
        t.finished_at = timezone.now()
        t.save(update_fields=["status", "lease_expires_at", "finished_at"])
        instruments.job_finished(t)
    return t


def transcription_delete(*, transcription: Transcription) -> None:
    """Remove the audio and the text; the money history (ledger) stays."""
    if not transcription.is_final:
        transcription = transcription_cancel(transcription=transcription)
    with transaction.atomic():
        t = transcription_lock(transcription_id=transcription.pk)
        name = t.audio.name
        t.audio = ""
        t.text = ""
        t.segments = []
        t.deleted_at = timezone.now()
        t.save(update_fields=["audio", "text", "segments", "deleted_at"])
        transaction.on_commit(lambda: audio_discard(name))
