"""Writes for transcription jobs: submit, claim, progress, finalize, fail, cancel, delete, sweep.

The job row is the truth. A task claims a job under a row lock (attempt + lease), and its result
is stored only if its attempt is still current, in one transaction with the money (hold -> debit).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.files.base import File
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing import tokens as token_rule
from billing.lock_objects import job_lock
from billing.services import hold_amount, hold_extend, hold_place, hold_release, hold_settle
from portal.errors import (
    Conflict,
    DomainError,
    FileTooLarge,
    IdempotencyConflict,
    InvalidRequest,
    UnsupportedAudio,
)
from transcription.engines import engine_model_name
from transcription.models import HotwordList, Transcription
from transcription.outbound import BlockedTarget, post_pinned
from transcription.selectors import transcription_cached_result

logger = logging.getLogger(__name__)

Status = Transcription.Status
LANGUAGES = ("auto", "zh", "en", "yue", "ja", "ko")
MAX_HOTWORDS = 200
MAX_HOTWORD_LEN = 64


class LeaseLost(Exception):
    """The job was canceled or taken over by another attempt; stop working on it."""


# --- submit ------------------------------------------------------------------------------


def options_normalize(options: dict) -> dict:
    """Validate and canonicalize job options (language, itn, vad, hotwords)."""
    language = (options.get("language") or "auto").strip().lower()
    if language not in LANGUAGES:
        raise InvalidRequest(f"language must be one of: {', '.join(LANGUAGES)} (got {language!r}).")
    hotwords = options.get("hotwords") or []
    if isinstance(hotwords, str):
        hotwords = hotwords.splitlines()
    hotwords = [w.strip() for w in hotwords if w and w.strip()]
    if len(hotwords) > MAX_HOTWORDS:
        raise InvalidRequest(f"At most {MAX_HOTWORDS} hotwords are allowed (got {len(hotwords)}).")
    too_long = [w for w in hotwords if len(w) > MAX_HOTWORD_LEN]
    if too_long:
        raise InvalidRequest(f"Hotwords must be at most {MAX_HOTWORD_LEN} characters: {too_long[0][:80]!r}.")
    return {
        "language": language,
        "itn": bool(options.get("itn", True)),
        "vad": bool(options.get("vad", True)),
        "hotwords": sorted(dict.fromkeys(hotwords), key=hotwords.index),
    }


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _sha256_file(uploaded) -> str:
    h = hashlib.sha256()
    uploaded.seek(0)
    for chunk in uploaded.chunks(1024 * 1024):
        h.update(chunk)
    uploaded.seek(0)
    return h.hexdigest()


@contextmanager
def _local_path(uploaded):
    """A filesystem path for the upload (Django spools big uploads to disk already)."""
    if hasattr(uploaded, "temporary_file_path"):
        yield uploaded.temporary_file_path()
        return
    fd, path = tempfile.mkstemp(prefix="tingxie-upload-")
    try:
        with os.fdopen(fd, "wb") as out:
            uploaded.seek(0)
            for chunk in uploaded.chunks(1024 * 1024):
                out.write(chunk)
        uploaded.seek(0)
        yield path
    finally:
        os.unlink(path)


def transcription_create(
    *,
    tenant,
    uploaded_file,
    options: dict,
    source: str = Transcription.Source.API,
    api_key=None,
    created_by=None,
    idempotency_key: str | None = None,
    webhook_url: str = "",
) -> Transcription:
    """Validate the upload, place the hold and queue the job; or answer from the tenant's cache.

    Nothing is stored or queued when the audio is rejected or the balance is short (402).
    """
    from transcription.audio import probe

    opts = options_normalize(options)
    if uploaded_file is None:
        raise InvalidRequest("Send the audio as multipart form field 'file'.")
    size = uploaded_file.size or 0
    if size > settings.MAX_UPLOAD_BYTES:
        raise FileTooLarge(
            f"The file is {size / 1e6:.1f} MB; the limit is {settings.MAX_UPLOAD_BYTES / 1e6:.0f} MB. "
            "Split the recording or compress it (e.g. Opus or MP3)."
        )
    if size == 0:
        raise UnsupportedAudio("The file is empty. Upload an audio file (wav, mp3, m4a, flac, ogg, opus, webm, mp4).")
    if idempotency_key is not None and not (0 < len(idempotency_key) <= 255):
        raise InvalidRequest("Idempotency-Key must be 1 to 255 characters.")

    sha = _sha256_file(uploaded_file)
    model = engine_model_name()
    options_hash = _digest({"options": opts, "model": model})
    request_hash = _digest({"sha256": sha, "options": opts, "webhook_url": webhook_url})

    if idempotency_key:
        existing = Transcription.objects.filter(tenant=tenant, idempotency_key=idempotency_key).first()
        if existing is not None:
            return _idempotent_replay(existing, request_hash)

    with _local_path(uploaded_file) as path:
        info = probe(path)
    cached = transcription_cached_result(tenant=tenant, sha256=sha, options_hash=options_hash, model=model)
    # A cache hit is billed from the stored result: hold what its decoded length needs, not only the probe's.
    held_s = max(info.duration_s, cached.duration_s or 0.0) if cached is not None else info.duration_s
    held = hold_amount(duration_s=held_s, model=model)

    job = Transcription(
        tenant=tenant,
        api_key=api_key,
        created_by=created_by,
        source=source,
        filename=(getattr(uploaded_file, "name", "") or "")[:255],
        size_bytes=size,
        sha256=sha,
        options=opts,
        options_hash=options_hash,
        model=model,
        webhook_url=webhook_url,
        idempotency_key=idempotency_key or None,
        request_hash=request_hash,
        probed_duration_s=info.duration_s,
        held_tokens=held,
        enqueued_at=timezone.now(),
    )
    stored_name = None
    try:
        with transaction.atomic():
            job.save(force_insert=True)
            hold_place(tenant=tenant, job=job, tokens=held)
            uploaded_file.seek(0)
            job.audio.save(job.pk.hex, File(uploaded_file), save=False)
            stored_name = job.audio.name
            job.save(update_fields=["audio"])
            if cached is not None:
                _complete_from_cache(job, cached)
            else:
                transaction.on_commit(lambda: transcription_enqueue(job_id=job.pk))
            if job.webhook_url and cached is not None:
                transaction.on_commit(lambda: webhook_enqueue(job_id=job.pk))
    except IntegrityError:
        _discard_file(stored_name)
        if idempotency_key:
            existing = Transcription.objects.filter(tenant=tenant, idempotency_key=idempotency_key).first()
            if existing is not None:
                return _idempotent_replay(existing, request_hash)
        raise
    except BaseException:
        _discard_file(stored_name)
        raise
    return job


def _discard_file(name: str | None) -> None:
    if name:
        from django.core.files.storage import default_storage

        default_storage.delete(name)


def _idempotent_replay(existing: Transcription, request_hash: str) -> Transcription:
    if existing.request_hash != request_hash:
        raise IdempotencyConflict(
            "This Idempotency-Key was already used with a different request (file or options). "
            "Use a new key for a new request."
        )
    existing.idempotent_replay = True
    return existing


def _complete_from_cache(job: Transcription, cached: Transcription) -> None:
    """Same tenant, same audio and options: reuse the stored result, billed as usual."""
    job.status = Status.SUCCEEDED
    job.cache_hit = True
    job.cache_source = cached
    job.text = cached.text
    job.segments = cached.segments
    job.language = cached.language
    job.duration_s = cached.duration_s
    job.truncated = cached.truncated
    job.speech_s = cached.speech_s
    job.attempt = 0
    job.progress = 1.0
    now = timezone.now()
    job.started_at = job.finished_at = now
    job.tokens = token_rule.count(job.text)
    job.token_rule = token_rule.RULE_VERSION
    job.billed_tokens, _ = hold_settle(job=job, tokens=job.tokens)
    job.save()


def transcription_enqueue(*, job_id) -> None:
    from django_q.tasks import async_task

    async_task(
        "transcription.tasks.transcription_run_task",
        str(job_id),
        cluster="asr",
        task_name=f"asr-{job_id}",
    )


# --- worker side ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    job_id: object
    attempt: int


def _lease_until():
    return timezone.now() + timedelta(seconds=settings.JOB_LEASE_SECONDS)


def transcription_claim(*, job_id) -> Claim | None:
    """Take the job for one attempt under a row lock; None if there is nothing to do."""
    with transaction.atomic():
        try:
            job = job_lock(job_id=job_id)
        except Transcription.DoesNotExist:
            return None
        now = timezone.now()
        runnable = job.status == Status.QUEUED or (
            job.status == Status.RUNNING and job.lease_expires_at is not None and job.lease_expires_at < now
        )
        if not runnable:
            return None
        if job.attempt >= settings.JOB_MAX_ATTEMPTS:
            _fail_locked(job, "worker_lost", _attempts_message(job))
            return None
        job.attempt += 1
        job.status = Status.RUNNING
        job.lease_expires_at = _lease_until()
        job.progress = 0.0
        job.started_at = job.started_at or now
        job.save(update_fields=["attempt", "status", "lease_expires_at", "progress", "started_at"])
        _last_beat.clear()
        _last_beat[(job.pk, job.attempt)] = time.monotonic()
        return Claim(job_id=job.pk, attempt=job.attempt)


HEARTBEAT_MIN_INTERVAL_S = 0.5
_last_beat: dict = {}


def transcription_heartbeat(*, claim: Claim, progress: float, force: bool = False) -> None:
    """Record progress and extend the lease; raises LeaseLost if this attempt is no longer current.

    Writes at most every HEARTBEAT_MIN_INTERVAL_S per job (progress is for humans; the lease is
    far longer), so short jobs cost one claim and one finalize transaction.
    """
    key = (claim.job_id, claim.attempt)
    now = time.monotonic()
    if not force and now - _last_beat.get(key, 0.0) < HEARTBEAT_MIN_INTERVAL_S:
        return
    _last_beat.clear()
    _last_beat[key] = now
    updated = Transcription.objects.filter(pk=claim.job_id, attempt=claim.attempt, status=Status.RUNNING).update(
        progress=min(max(progress, 0.0), 0.99), lease_expires_at=_lease_until()
    )
    if not updated:
        raise LeaseLost(str(claim.job_id))


# Decoders emit a little more than the packets promise (priming, resampler tails): that much is not re-held.
HOLD_SLACK_S = 0.5


def transcription_hold_cover(*, claim: Claim, duration_s: float) -> int:
    """Make the job's hold cover `duration_s` of decoded audio before it is recognized; returns the hold.

    Raises LeaseLost when the attempt is no longer current and InsufficientBalance (402, the job then fails
    uncharged) when the tenant cannot cover the extra tokens.
    """
    with transaction.atomic():
        job = job_lock(job_id=claim.job_id)
        if job.status != Status.RUNNING or job.attempt != claim.attempt:
            raise LeaseLost(str(claim.job_id))
        needed = hold_amount(duration_s=duration_s, model=job.model)
        if needed > job.held_tokens:
            hold_extend(tenant=job.tenant, job=job, tokens=needed - job.held_tokens)
            logger.warning(
                "Transcription %s: decoded %.1f s but the upload probed %.1f s; hold extended %s -> %s tokens",
                job.pk, duration_s, job.probed_duration_s or 0.0, job.held_tokens, needed,
            )  # fmt: skip
            job.held_tokens = needed
            job.save(update_fields=["held_tokens"])
        return job.held_tokens


def _hold_guard(claim: Claim, job: Transcription):
    """The pipeline's `admit` callback: extend the hold only when decoding passes what it already covers."""
    covered = {"tokens": job.held_tokens}

    def admit(decoded_s: float) -> None:
        if hold_amount(duration_s=max(0.0, decoded_s - HOLD_SLACK_S), model=job.model) > covered["tokens"]:
            covered["tokens"] = transcription_hold_cover(claim=claim, duration_s=decoded_s)

    return admit


def transcription_run(*, job_id) -> str:
    """Claim, decode, recognize and finalize one job. Returns what happened (for logs and tests)."""
    from django.core.exceptions import ImproperlyConfigured

    from transcription.engines import get_engine
    from transcription.engines.base import EngineUnavailable, TranscribeOptions
    from transcription.pipeline import recognize_file

    claim = transcription_claim(job_id=job_id)
    if claim is None:
        return "skipped"
    job = Transcription.objects.get(pk=job_id)
    try:
        opts = job.options
        # Streams the decode (chunks, not the whole file): worker memory stays bounded however long the audio.
        result = recognize_file(
            job.audio.path,
            engine=get_engine(),
            options=TranscribeOptions(
                language=opts.get("language", "auto"),
                itn=opts.get("itn", True),
                vad=opts.get("vad", True),
                hotwords=tuple(opts.get("hotwords", [])),
            ),
            progress=lambda f: transcription_heartbeat(claim=claim, progress=0.05 + 0.9 * f),
            max_seconds=settings.MAX_AUDIO_SECONDS,
            expected_s=job.probed_duration_s or None,
            admit=_hold_guard(claim, job),
        )
    except LeaseLost:
        return "lease_lost"
    except (EngineUnavailable, ImproperlyConfigured) as exc:
        logger.error("Transcription %s: the ASR model is unavailable: %s", job_id, exc)
        transcription_fail(
            job_id=job_id,
            attempt=claim.attempt,
            code="model_unavailable",
            message="The speech model is not available on the worker right now. You were not charged; "
            "retry later, or contact support with the job id.",
        )
        return "failed"
    except DomainError as exc:
        transcription_fail(job_id=job_id, attempt=claim.attempt, code=exc.code, message=exc.message)
        return "failed"
    except FileNotFoundError:
        transcription_fail(
            job_id=job_id,
            attempt=claim.attempt,
            code="audio_missing",
            message="The stored audio is gone; upload it again.",
        )
        return "failed"
    except Exception:
        logger.exception("Transcription %s attempt %s crashed", job_id, claim.attempt)
        transcription_fail(
            job_id=job_id,
            attempt=claim.attempt,
            code="internal_error",
            message="Recognition failed on the worker. You were not charged; retry, or contact support with the job id.",
        )
        return "failed"
    done = transcription_finalize(
        claim=claim,
        text=result.text,
        segments=[{"start": round(s.start, 3), "end": round(s.end, 3), "text": s.text} for s in result.segments],
        language=result.language,
        duration_s=result.duration_s,
        truncated=result.truncated,
        decode_ms=result.decode_ms,
        vad_ms=result.vad_ms,
        asr_ms=result.asr_ms,
        speech_s=result.speech_s,
    )
    return "succeeded" if done else "stale"


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
) -> bool:
    """Store the result and settle the money in one transaction, only if the attempt is current."""
    tokens = token_rule.count(text)
    with transaction.atomic():
        job = job_lock(job_id=claim.job_id)
        if job.status != Status.RUNNING or job.attempt != claim.attempt:
            return False
        job.billed_tokens, _ = hold_settle(job=job, tokens=tokens)
        job.tokens = tokens
        job.token_rule = token_rule.RULE_VERSION
        job.text = text
        job.segments = segments
        job.language = language
        job.duration_s = duration_s
        job.truncated = truncated
        job.decode_ms, job.vad_ms, job.asr_ms, job.speech_s = decode_ms, vad_ms, asr_ms, speech_s
        job.status = Status.SUCCEEDED
        job.progress = 1.0
        job.lease_expires_at = None
        job.finished_at = timezone.now()
        job.save(
            update_fields=[
                "billed_tokens", "tokens", "token_rule", "text", "segments", "language", "duration_s", "truncated",
                "decode_ms", "vad_ms", "asr_ms", "speech_s", "status", "progress", "lease_expires_at", "finished_at",
            ]
        )  # fmt: skip
        if job.webhook_url:
            transaction.on_commit(lambda: webhook_enqueue(job_id=job.pk))
    return True


def _fail_locked(job: Transcription, code: str, message: str) -> None:
    hold_release(job=job)
    job.status = Status.FAILED
    job.error_code = code
    job.error_message = message
    job.lease_expires_at = None
    job.finished_at = timezone.now()
    job.save(update_fields=["status", "error_code", "error_message", "lease_expires_at", "finished_at"])
    if job.webhook_url:
        transaction.on_commit(lambda: webhook_enqueue(job_id=job.pk))


def transcription_fail(*, job_id, code: str, message: str, attempt: int | None = None) -> bool:
    """Fail the job and release its whole hold (a failed job costs nothing)."""
    with transaction.atomic():
        job = job_lock(job_id=job_id)
        if job.is_final or (attempt is not None and job.attempt != attempt):
            return False
        _fail_locked(job, code, message)
        return True


def _attempts_message(job: Transcription) -> str:
    return (
        f"The worker processing this job stopped {job.attempt} times. You were not charged; "
        "retry the upload, or contact support with the job id."
    )


def transcription_cancel(*, job: Transcription) -> Transcription:
    with transaction.atomic():
        job = job_lock(job_id=job.pk)
        if job.status == Status.CANCELED:
            return job
        if job.is_final:
            raise Conflict(
                f"The job already {job.status}; only queued or running jobs can be canceled.", code="job_finished"
            )
        hold_release(job=job)
        job.status = Status.CANCELED
        job.lease_expires_at = None
        job.finished_at = timezone.now()
        job.save(update_fields=["status", "lease_expires_at", "finished_at"])
    return job


def transcription_delete(*, job: Transcription) -> None:
    """Remove the audio and the text; the job's money history (ledger) stays."""
    if not job.is_final:
        job = transcription_cancel(job=job)
    with transaction.atomic():
        job = job_lock(job_id=job.pk)
        name = job.audio.name
        job.audio = ""
        job.text = ""
        job.segments = []
        job.deleted_at = timezone.now()
        job.save(update_fields=["audio", "text", "segments", "deleted_at"])
        transaction.on_commit(lambda: _discard_file(name))


def transcriptions_sweep() -> dict:
    """Re-queue jobs whose lease expired (worker died), fail those past the attempt cap, and
    re-enqueue queued jobs whose task may have been lost by the broker."""
    now = timezone.now()
    counts = {"requeued": 0, "failed": 0, "reenqueued": 0}
    expired = Transcription.objects.filter(status=Status.RUNNING, lease_expires_at__lt=now).values_list("pk", flat=True)
    for job_id in list(expired):
        with transaction.atomic():
            job = job_lock(job_id=job_id)
            if job.status != Status.RUNNING or job.lease_expires_at is None or job.lease_expires_at >= now:
                continue
            if job.attempt >= settings.JOB_MAX_ATTEMPTS:
                _fail_locked(job, "worker_lost", _attempts_message(job))
                counts["failed"] += 1
                continue
            job.status = Status.QUEUED
            job.lease_expires_at = None
            job.enqueued_at = now
            job.save(update_fields=["status", "lease_expires_at", "enqueued_at"])
            transaction.on_commit(lambda job_id=job_id: transcription_enqueue(job_id=job_id))
            counts["requeued"] += 1
    stale_before = now - timedelta(seconds=settings.JOB_REQUEUE_AFTER_SECONDS)
    stale = Transcription.objects.filter(status=Status.QUEUED, enqueued_at__lt=stale_before).values_list(
        "pk", flat=True
    )
    for job_id in list(stale):
        if Transcription.objects.filter(pk=job_id, status=Status.QUEUED, enqueued_at__lt=stale_before).update(
            enqueued_at=now
        ):
            transcription_enqueue(job_id=job_id)
            counts["reenqueued"] += 1
    return counts


# --- webhooks ------------------------------------------------------------------------------

WEBHOOK_BACKOFF = (10, 60, 300, 1800, 7200)


def webhook_enqueue(*, job_id, attempt: int = 1) -> None:
    from django_q.tasks import async_task

    async_task("transcription.tasks.webhook_deliver_task", str(job_id), attempt, cluster="default")


def webhook_payload(job: Transcription) -> bytes:
    from transcription.api.serializers import job_representation

    return json.dumps(
        {"type": f"transcription.{job.status}", "data": job_representation(job)}, ensure_ascii=False
    ).encode()


def webhook_sign(*, secret: str, timestamp: int, body: bytes) -> str:
    import hmac

    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def webhook_deliver(*, job_id, attempt: int = 1) -> bool:
    """POST the signed result to the job's webhook_url; on failure schedule a retry with backoff."""
    job = Transcription.objects.select_related("tenant").filter(pk=job_id).first()
    if job is None or not job.webhook_url:
        return False
    body = webhook_payload(job)
    ts = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Tingxie-Webhook/1",
        "Tingxie-Signature": webhook_sign(secret=job.tenant.webhook_secret, timestamp=ts, body=body),
        "Tingxie-Event-Id": f"{job.pk}:{job.status}",
    }
    ok = False
    try:
        allow = settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS
        status = post_pinned(job.webhook_url, body, headers, timeout=10, allow_private=allow).status
        ok = 200 <= status < 300
    except BlockedTarget as exc:
        logger.warning("Webhook for %s refused: %s", job_id, exc)
        Transcription.objects.filter(pk=job.pk).update(webhook_status="blocked", webhook_attempts=attempt)
        return False
    except Exception as exc:  # noqa: BLE001 - any delivery failure is retried
        logger.info("Webhook for %s attempt %s failed: %s", job_id, attempt, exc)
    Transcription.objects.filter(pk=job.pk).update(
        webhook_status="delivered" if ok else ("retrying" if attempt <= len(WEBHOOK_BACKOFF) else "failed"),
        webhook_attempts=attempt,
    )
    if not ok and attempt <= len(WEBHOOK_BACKOFF):
        from django_q.models import Schedule

        Schedule.objects.create(
            func="transcription.tasks.webhook_deliver_task",
            args=repr((str(job.pk), attempt + 1)),
            schedule_type=Schedule.ONCE,
            repeats=1,
            next_run=timezone.now() + timedelta(seconds=WEBHOOK_BACKOFF[attempt - 1]),
            name=f"webhook-{job.pk}-{attempt + 1}",
        )
    return ok


# --- hotword lists ---------------------------------------------------------------------------


def hotword_list_save(*, tenant, name: str, words: str, hotword_list: HotwordList | None = None) -> HotwordList:
    words_list = options_normalize({"hotwords": words})["hotwords"]
    if not name.strip():
        raise InvalidRequest("Give the hotword list a name.")
    obj = hotword_list or HotwordList(tenant=tenant)
    obj.name = name.strip()[:100]
    obj.words = "\n".join(words_list)
    obj.save()
    return obj
