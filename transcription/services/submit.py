"""Submitting audio: validate, store, hold the money and queue; or answer from the idempotency record or cache."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

from django.conf import settings
from django.core.files.base import File
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from billing import tokens as token_rule
from billing.lock_objects import account_lock
from billing.services import hold_amount, hold_place, hold_place_with_row, hold_settle
from portal.errors import FileTooLarge, IdempotencyConflict, InvalidRequest, UnsupportedAudio
from transcription import instruments, rows_sql
from transcription.constants import LANGUAGES
from transcription.engines import engine_model_name
from transcription.models import Transcription
from transcription.selectors import no_cached_result_sql, transcription_cached_result, transcription_identical
from transcription.services.common import Status, audio_discard, transcription_enqueue, webhook_enqueue
from transcription.services.hotwords import hotwords_merge
from transcription.services.speakers import speaker_options_normalize

MAX_HOTWORDS = 200
MAX_HOTWORD_LEN = 64


def options_normalize(options: dict, *, tenant=None) -> dict:
    """Validate and canonicalize options (language, itn, vad, hotwords; a saved `hotword_list` id of the tenant's
    is merged in first, then the typed hotwords, duplicates dropped; speakers: see speaker_options_normalize;
    word_timestamps and scores: per-segment words and token scores, kept only when true)."""
    language = (options.get("language") or "auto").strip().lower()
    if language not in LANGUAGES:
        raise InvalidRequest(f"language must be one of: {', '.join(LANGUAGES)} (got {language!r}).")
    hotwords = hotwords_merge(tenant=tenant, hotwords=options.get("hotwords"), list_id=options.get("hotword_list"))
    if len(hotwords) > MAX_HOTWORDS:
        raise InvalidRequest(f"At most {MAX_HOTWORDS} hotwords are allowed (got {len(hotwords)}).")
    too_long = [w for w in hotwords if len(w) > MAX_HOTWORD_LEN]
    if too_long:
        raise InvalidRequest(f"Hotwords must be at most {MAX_HOTWORD_LEN} characters: {too_long[0][:80]!r}.")
    return {
        "language": language,
        "itn": bool(options.get("itn", True)),
        "vad": bool(options.get("vad", True)),
        "hotwords": hotwords,
        **speaker_options_normalize(options, tenant=tenant),
        # Only when asked for, so requests without them keep the same options (and cache keys) as before:
        **{name: True for name in ("word_timestamps", "scores") if options.get(name) is True},
    }


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _sha256_file(uploaded) -> str:
    """The upload's SHA-256: computed while it was received (transcription.uploads), else read once now."""
    received = getattr(uploaded, "sha256", None)
    if received:
        return received
    h = hashlib.sha256()
    uploaded.seek(0)
    for chunk in uploaded.chunks(1024 * 1024):
        h.update(chunk)
    uploaded.seek(0)
    return h.hexdigest()


def _check_upload(uploaded_file, idempotency_key: str | None) -> None:
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


def _idempotent_match(*, tenant, idempotency_key: str | None, request_hash: str) -> Transcription | None:
    if not idempotency_key:
        return None
    existing = Transcription.objects.filter(tenant=tenant, idempotency_key=idempotency_key).first()
    if existing is None:
        return None
    if existing.request_hash != request_hash:
        raise IdempotencyConflict(
            "This Idempotency-Key was already used with a different request (file or options). "
            "Use a new key for a new request."
        )
    existing.idempotent_replay = True
    return existing


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
    attach_identical: bool = False,
    replay_since: datetime | None = None,
) -> Transcription:
    """Validate the upload, store it, place the hold and queue the transcription; or answer from the cache.

    `attach_identical` (the OpenAI endpoint, whose clients retry without an Idempotency-Key): an identical
    request (same tenant, audio, options) whose job is still queued or running gets that job back, marked
    `attached`, with no new hold; with `replay_since`, so does one whose identical job succeeded since then.

    The audio is stored before the money transaction (which then lasts a few queries, however big the file)
    and removed again when the transcription is refused (402, idempotency conflict) or anything fails. A
    process killed between the store and the commit cannot remove it: `transcription_orphans_sweep` does,
    once it is older than ORPHAN_AUDIO_MAX_AGE_SECONDS and still no row references it.
    """
    from transcription.audio import probe

    opts = options_normalize(options, tenant=tenant)
    _check_upload(uploaded_file, idempotency_key)
    sha = _sha256_file(uploaded_file)
    request_hash = _digest({"sha256": sha, "options": opts, "webhook_url": webhook_url})
    replay = _idempotent_match(tenant=tenant, idempotency_key=idempotency_key, request_hash=request_hash)
    if replay is not None:
        return replay
    attach = attach_identical and not idempotency_key
    if attach:
        found = transcription_identical(
            tenant=tenant, sha256=sha, request_hash=request_hash, finished_since=replay_since
        )
        if found is not None:
            found.attached = True
            return found

    # A spooled upload is probed where it lies; one held in memory is probed there (no copy to disk).
    if hasattr(uploaded_file, "temporary_file_path"):
        info = probe(uploaded_file.temporary_file_path())
    else:
        info = probe(uploaded_file.file)
    model = engine_model_name()
    options_hash = _digest({"options": opts, "model": model})
    transcription = Transcription(
        tenant=tenant,
        api_key=api_key,
        created_by=created_by,
        source=source,
        filename=(getattr(uploaded_file, "name", "") or "")[:255],
        size_bytes=uploaded_file.size,
        sha256=sha,
        options=opts,
        options_hash=options_hash,
        model=model,
        webhook_url=webhook_url,
        idempotency_key=idempotency_key or None,
        request_hash=request_hash,
        probed_duration_s=info.duration_s,
        held_tokens=hold_amount(duration_s=info.duration_s, model=model),
    )
    uploaded_file.seek(0)
    transcription.audio.save(transcription.pk.hex, File(uploaded_file), save=False)
    try:
        # PostgreSQL, no cached result (nearly every submit): the row and its hold in one statement, which also
        # checks that there is no cached result, so the lookup costs no round trip of its own.
        if attach or not _insert_and_hold_at_once(transcription):
            cached = transcription_cached_result(tenant=tenant, sha256=sha, options_hash=options_hash, model=model)
            if cached is not None:
                # A cache hit is billed from the stored result: hold what its decoded length needs too.
                held_s = max(info.duration_s, cached.duration_s or 0.0)
                transcription.held_tokens = hold_amount(duration_s=held_s, model=model)
            _insert_with_hold(transcription, cached, attach=attach)
    except _Identical as identical:
        audio_discard(transcription.audio.name)
        identical.job.attached = True
        return identical.job
    except IntegrityError:
        audio_discard(transcription.audio.name)
        replay = _idempotent_match(tenant=tenant, idempotency_key=idempotency_key, request_hash=request_hash)
        if replay is not None:
            return replay
        raise
    except BaseException:
        audio_discard(transcription.audio.name)
        raise
    return transcription


class _Identical(Exception):  # noqa: N818 - a control-flow signal, not an error
    def __init__(self, job: Transcription):
        self.job = job


def _insert_with_hold(transcription: Transcription, cached: Transcription | None, *, attach: bool = False) -> None:
    """One short transaction: the row, its hold, and the cached result or the task hop after commit.

    With `attach`, identical requests are serialized first (_identical_lock), so of two racing, the second sees
    the first's job and attaches to it (raises _Identical) instead.
    """
    with transaction.atomic():
        if attach:
            _identical_lock(transcription)
            found = transcription_identical(
                tenant=transcription.tenant_id, sha256=transcription.sha256, request_hash=transcription.request_hash
            )
            if found is not None:
                raise _Identical(found)
        transcription.enqueued_at = timezone.now()
        transcription.save(force_insert=True)
        hold_place(tenant_id=transcription.tenant_id, reference=transcription.pk, tokens=transcription.held_tokens)
        instruments.job_submitted(transcription)
        if cached is not None:
            _complete_from_cache(transcription, cached)
            instruments.job_finished(transcription)
            if transcription.webhook_url:
                transaction.on_commit(lambda: webhook_enqueue(transcription_id=transcription.pk))
        else:
            transaction.on_commit(lambda: transcription_enqueue(transcription_id=transcription.pk))


def _insert_and_hold_at_once(transcription: Transcription) -> bool:
    """PostgreSQL: the row and its hold in one statement (billing.hold_place_with_row), its own transaction:
    one round trip instead of four (BEGIN, INSERT, the money write, COMMIT), and the tenant's balance row, which
    every submit and finalize of the tenant writes, is locked only while that statement runs (issue 13: twenty
    clients of one tenant queued on it). False when it wrote nothing (balance short, no account row yet; or not
    PostgreSQL; or a cached result exists): the caller then looks for the cached result, and _insert_with_hold
    decides, and answers 402 with the balance it was refused against."""
    transcription.enqueued_at = timezone.now()
    row = rows_sql.insert_with_balance_move(transcription)
    no_cache = no_cached_result_sql(
        tenant=transcription.tenant_id,
        sha256=transcription.sha256,
        options_hash=transcription.options_hash,
        model=transcription.model,
    )
    placed = hold_place_with_row(
        tenant_id=transcription.tenant_id,
        reference=transcription.pk,
        tokens=transcription.held_tokens,
        row=row,
        only_if=no_cache,
    )
    if placed is None:
        return False
    transcription._state.adding, transcription._state.db = False, connection.alias
    instruments.job_submitted(transcription)
    transaction.on_commit(lambda: transcription_enqueue(transcription_id=transcription.pk))
    return True


def _identical_lock(transcription: Transcription) -> None:
    """Until this transaction ends: only one request with this tenant's request hash goes on at a time.

    PostgreSQL: a transaction-scoped advisory lock on (tenant, request hash), so that different requests of one
    tenant do not queue behind each other for the whole transaction, as they did on the balance row (issue 13:
    20 concurrent clients of one tenant). Elsewhere the balance row lock (SQLite serializes writers anyway).
    """
    if connection.vendor != "postgresql":
        account_lock(tenant_id=transcription.tenant_id)
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, %s))",
            [transcription.request_hash, transcription.tenant_id],
        )


def _complete_from_cache(transcription: Transcription, cached: Transcription) -> None:
    """Same tenant, same audio, options and model: reuse the stored result, billed as usual."""
    t = transcription
    t.status = Status.SUCCEEDED
    t.cache_hit = True
    t.cache_source = cached
    t.text, t.segments, t.language, t.warnings = cached.text, cached.segments, cached.language, cached.warnings
    t.duration_s, t.truncated, t.speech_s = cached.duration_s, cached.truncated, cached.speech_s
    t.model = cached.model
    t.attempt = 0
    t.progress = 1.0
    t.started_at = t.finished_at = timezone.now()
    t.tokens = token_rule.count(t.text)
    t.token_rule = token_rule.RULE_VERSION
    t.billed_tokens, _ = hold_settle(tenant_id=t.tenant_id, reference=t.pk, held=t.held_tokens, tokens=t.tokens)
    t.save()
