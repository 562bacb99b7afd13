"""Voiceprints: enroll, rename and delete a tenant's speakers; answer "who is speaking" (Xiaozhi identify).

The web tier decodes the samples (ffmpeg, no model) and stores them as 16-bit PCM on the row; the worker
(asr cluster, where the speaker model lives) embeds them and clears the audio. Enrollment and identification
produce no text, so they cost no tokens (billing is per output token; PRODUCT.md).
"""

from __future__ import annotations

import logging

import numpy as np
from django.conf import settings
from django.db import transaction

from portal.errors import InvalidRequest, NotFound, UnsupportedAudio
from transcription.constants import SAMPLE_RATE
from transcription.diarize import MAX_SPEAKERS
from transcription.models import Speaker, SpeakerIdentification
from transcription.selectors import speaker_list_by_ids

logger = logging.getLogger(__name__)

MAX_SAMPLES = 5
MAX_SAMPLE_SECONDS = 60.0
MIN_SPEECH_SECONDS = 1.0
GAP = np.zeros(SAMPLE_RATE // 2, dtype=np.int16)  # between samples, so no window spans two of them


def _decode(uploaded) -> np.ndarray:
    """One uploaded sample as 16 kHz mono PCM16 (at most MAX_SAMPLE_SECONDS)."""
    from transcription.audio import decode_stream
    from transcription.services.submit import _check_upload

    _check_upload(uploaded, None)
    # A spooled upload is decoded where it lies; one held in memory is decoded from memory (as submit probes).
    source = uploaded.temporary_file_path() if hasattr(uploaded, "temporary_file_path") else uploaded.file
    uploaded.seek(0)
    with decode_stream(source, max_seconds=MAX_SAMPLE_SECONDS) as stream:
        parts = list(stream)
    samples = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
    if samples.shape[0] < SAMPLE_RATE * MIN_SPEECH_SECONDS:
        raise UnsupportedAudio(f"A voice sample must be at least {MIN_SPEECH_SECONDS:.0f} s long.")
    return (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")


def _pcm(uploaded_files: list) -> bytes:
    if not uploaded_files:
        raise InvalidRequest("Send one or more voice samples as multipart field 'file'.")
    if len(uploaded_files) > MAX_SAMPLES:
        raise InvalidRequest(f"At most {MAX_SAMPLES} voice samples per request.")
    parts: list[np.ndarray] = []
    for uploaded in uploaded_files:
        parts += [_decode(uploaded), GAP]
    return np.concatenate(parts).tobytes()


def _name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise InvalidRequest("A speaker needs a name of 1 to 100 characters.")
    return name


def _enqueue(task: str, pk) -> None:
    from django_q.tasks import async_task

    async_task(task, str(pk), cluster="asr", task_name=f"spk-{pk}")


def speaker_create(*, tenant, name: str, uploaded_files: list, external_id: str | None = None) -> Speaker:
    """Enroll a speaker from one or more samples; the worker computes the voiceprint (status pending -> ready).

    With `external_id` (Xiaozhi's speaker_id) an existing speaker of that id is re-enrolled instead.
    """
    name, pcm = _name(name), _pcm(uploaded_files)
    with transaction.atomic():
        speaker = None
        if external_id:
            speaker = Speaker.objects.select_for_update().filter(tenant=tenant, external_id=external_id).first()
        if speaker is None:
            speaker = Speaker(tenant=tenant, external_id=external_id or None)
        speaker.name = name
        speaker.status = Speaker.Status.PENDING
        speaker.pending_audio = pcm
        speaker.samples = len(uploaded_files)
        speaker.error_message = ""
        speaker.save()
        transaction.on_commit(lambda: _enqueue("transcription.tasks.speaker_enroll_task", speaker.pk))
    return speaker


def speaker_rename(*, speaker: Speaker, name: str) -> Speaker:
    speaker.name = _name(name)
    speaker.save(update_fields=["name", "updated_at"])
    return speaker


def speaker_delete(*, speaker: Speaker) -> None:
    """Delete the speaker and with it the voiceprint (no copy is kept anywhere)."""
    speaker.delete()


def _speech_windows(pcm: bytes):
    from transcription.diarize import speech_windows
    from transcription.vad import speech_regions

    audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    return audio, speech_windows(speech_regions(audio, min_silence_ms=200))


def _embed(pcm: bytes) -> tuple[np.ndarray, float]:
    """The normalized mean embedding of the speech in `pcm`, and its seconds; UnsupportedAudio if none."""
    from transcription.engines import get_speaker_engine

    audio, windows = _speech_windows(pcm)
    speech = sum(e - s for s, e in windows) / SAMPLE_RATE
    if not windows:
        raise UnsupportedAudio("No speech was found in the voice sample.")
    rows = get_speaker_engine().embed([audio[s:e] for s, e in windows])
    mean = rows.mean(axis=0)
    return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32), speech


def speaker_enroll(*, speaker_id) -> str:
    """Worker: embed a pending speaker's samples and store the voiceprint; the audio is dropped either way."""
    from transcription.engines import get_speaker_engine

    speaker = Speaker.objects.filter(pk=speaker_id, status=Speaker.Status.PENDING).first()
    if speaker is None or speaker.pending_audio is None:
        return "skipped"
    try:
        embedding, speech_s = _embed(bytes(speaker.pending_audio))
    except UnsupportedAudio as exc:
        updated = Speaker.objects.filter(pk=speaker.pk, status=Speaker.Status.PENDING).update(
            status=Speaker.Status.FAILED, error_message=exc.message, pending_audio=None
        )
        return "failed" if updated else "skipped"
    updated = Speaker.objects.filter(pk=speaker.pk, status=Speaker.Status.PENDING).update(
        status=Speaker.Status.READY,
        embedding=embedding.tobytes(),
        embedding_model=get_speaker_engine().name,
        speech_s=round(speech_s, 3),
        pending_audio=None,
    )
    return "ready" if updated else "skipped"


def identification_create(*, tenant, uploaded_file, speaker_ids: list[str]) -> SpeakerIdentification:
    """A "who is speaking" question among the tenant's speakers (ids or Xiaozhi external ids); 404 if any is
    not the tenant's."""
    if not speaker_ids:
        raise InvalidRequest("speaker_ids must name at least one enrolled speaker.")
    candidates = speaker_list_by_ids(tenant=tenant, speaker_ids=speaker_ids)
    if len(candidates) != len(set(speaker_ids)):
        raise NotFound("No such speaker.")
    pcm = _pcm([uploaded_file])
    with transaction.atomic():
        query = SpeakerIdentification.objects.create(
            tenant=tenant, pending_audio=pcm, candidates=[str(s.pk) for s in candidates]
        )
        transaction.on_commit(lambda: _enqueue("transcription.tasks.speaker_identify_task", query.pk))
    return query


def identification_run(*, identification_id) -> str:
    """Worker: embed the question's audio and pick the most similar ready candidate (None below the threshold)."""
    query = SpeakerIdentification.objects.filter(pk=identification_id, status="pending").first()
    if query is None:
        return "skipped"
    speakers = [s for s in Speaker.objects.filter(pk__in=query.candidates, tenant_id=query.tenant_id) if s.embedding]
    try:
        vector, _ = _embed(bytes(query.pending_audio or b""))
    except UnsupportedAudio as exc:
        query.status, query.error_message = SpeakerIdentification.Status.FAILED, exc.message
    else:
        query.status = SpeakerIdentification.Status.DONE
        if speakers:
            scores = [float(np.frombuffer(bytes(s.embedding), dtype=np.float32) @ vector) for s in speakers]
            best = int(np.argmax(scores))
            query.score = round(scores[best], 4)
            query.speaker = speakers[best] if scores[best] >= settings.VOICEPRINT_THRESHOLD else None
    query.pending_audio = None
    query.save(update_fields=["status", "error_message", "score", "speaker", "pending_audio"])
    return query.status


def _count(options: dict, key: str) -> int | None:
    value = options.get(key)
    if value in (None, ""):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidRequest(f"{key} must be a whole number.") from None
    if not 1 <= number <= MAX_SPEAKERS:
        raise InvalidRequest(f"{key} must be between 1 and {MAX_SPEAKERS}.")
    return number


def speaker_options_normalize(options: dict, *, tenant=None) -> dict:
    """The speaker part of a job's options: `diarize` (+ `speakers` or `min_speakers`/`max_speakers`, which
    imply it) and `speaker_ids` (the tenant's enrolled speakers; another tenant's id is 404). Empty when unused,
    so the options (and cache keys) of jobs without speakers are unchanged."""
    out: dict = {}
    exact, low, high = _count(options, "speakers"), _count(options, "min_speakers"), _count(options, "max_speakers")
    if exact is not None and (low is not None or high is not None):
        raise InvalidRequest("Give either speakers or min_speakers/max_speakers, not both.")
    if exact is not None:
        low = high = exact
    low, high = low or 1, high or MAX_SPEAKERS
    if low > high:
        raise InvalidRequest("min_speakers must not be larger than max_speakers.")
    if _flag(options.get("diarize")) or options.get("speakers") not in (None, "") or (low, high) != (1, MAX_SPEAKERS):
        out.update({"diarize": True, "min_speakers": low, "max_speakers": high})
    ids = options.get("speaker_ids") or []
    if isinstance(ids, str):
        ids = [part for part in ids.replace("\n", ",").split(",") if part.strip()]
    if ids:
        if tenant is None:
            raise InvalidRequest("speaker_ids need a tenant.")
        if len(ids) > MAX_SPEAKERS:
            raise InvalidRequest(f"At most {MAX_SPEAKERS} speaker_ids.")
        found = speaker_list_by_ids(tenant=tenant, speaker_ids=ids)
        if len(found) != len({str(i).strip() for i in ids}):
            raise NotFound("No such speaker.")
        not_ready = [s.name for s in found if s.status != Speaker.Status.READY]
        if not_ready:
            raise InvalidRequest(f"The speaker {not_ready[0]!r} has no voiceprint yet (enrollment not ready).")
        out["speaker_ids"] = [str(s.pk) for s in found]
    return out


def _flag(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def speaker_track_for(*, tenant_id, options: dict):
    """The diarization / voiceprint step for a job's options (None when it asks for neither)."""
    from transcription.diarize import SpeakerOptions, SpeakerTrack
    from transcription.engines import get_speaker_engine
    from transcription.selectors import speaker_voiceprints

    ids = options.get("speaker_ids") or []
    if not options.get("diarize") and not ids:
        return None
    engine = get_speaker_engine()
    prints = speaker_voiceprints(tenant=tenant_id, speaker_ids=ids, model=engine.name) if ids else ()
    return SpeakerTrack(
        engine=engine,
        options=SpeakerOptions(
            diarize=bool(options.get("diarize")),
            min_speakers=int(options.get("min_speakers") or 1),
            max_speakers=int(options.get("max_speakers") or MAX_SPEAKERS),
            voiceprints=prints,
            cluster_threshold=settings.SPEAKER_CLUSTER_THRESHOLD,
            voiceprint_threshold=settings.VOICEPRINT_THRESHOLD,
        ),
        unknown_when_unmatched=bool(ids),
    )


def transcription_speakers_rename(*, transcription, names: dict[str, str]):
    """Rename speaker labels in one transcript's segments (exports follow); the same name twice merges them."""
    from portal.errors import Conflict
    from transcription.models import Transcription
    from transcription.services.common import transcription_lock

    clean = {old: _name(new) for old, new in names.items() if old and new is not None and new.strip() != old}
    with transaction.atomic():
        t = transcription_lock(transcription_id=transcription.pk)
        if t.status != Transcription.Status.SUCCEEDED or t.deleted_at is not None:
            raise Conflict("Only a finished transcript's speakers can be renamed.", code="transcription_not_ready")
        segments = [dict(seg) for seg in t.segments or []]
        for seg in segments:
            if seg.get("speaker") in clean:
                seg["speaker"] = clean[seg["speaker"]]
        t.segments = segments
        t.save(update_fields=["segments"])
    return t
