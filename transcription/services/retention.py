"""Retention: each tenant's audio and transcripts removed N days after the transcription finished.

Audio goes through the storage API (whatever backend holds it); text and segments are blanked. The row, its
token counts and the ledger stay, so statements and receipts still add up; the row records what expired.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from tenants.models import Tenant
from transcription.models import Transcription
from transcription.services.common import audio_discard, transcription_lock

logger = logging.getLogger(__name__)

# Per tenant and kind in one run (a run stays bounded; the rest expires the next day).
MAX_PER_RUN = 10_000


def _expire_audio(transcription_id, now) -> bool:
    with transaction.atomic():
        t = transcription_lock(transcription_id=transcription_id)
        if not t.audio or not t.is_final:
            return False
        name = t.audio.name
        t.audio = ""
        t.audio_expired_at = now
        t.save(update_fields=["audio", "audio_expired_at"])
        transaction.on_commit(lambda: audio_discard(name))
    return True


def _expire_transcript(transcription_id, now) -> bool:
    with transaction.atomic():
        t = transcription_lock(transcription_id=transcription_id)
        if t.transcript_expired_at or not t.is_final:
            return False
        t.text = ""
        t.segments = []
        t.transcript_expired_at = now
        t.save(update_fields=["text", "segments", "transcript_expired_at"])
    return True


def transcription_retention_apply() -> dict:
    """Apply every tenant's retention settings once; returns how many audio files and transcripts expired."""
    now = timezone.now()
    counts = {"audio": 0, "transcripts": 0}
    tenants = Tenant.objects.filter(Q(audio_retention_days__isnull=False) | Q(transcript_retention_days__isnull=False))
    for tenant in tenants.only("pk", "audio_retention_days", "transcript_retention_days"):
        jobs = Transcription.objects.filter(tenant=tenant, finished_at__isnull=False)
        if tenant.audio_retention_days is not None:
            due = jobs.filter(finished_at__lt=now - timedelta(days=tenant.audio_retention_days)).exclude(audio="")
            for pk in list(due.values_list("pk", flat=True)[:MAX_PER_RUN]):
                counts["audio"] += _expire_audio(pk, now)
        if tenant.transcript_retention_days is not None:
            cutoff = now - timedelta(days=tenant.transcript_retention_days)
            due = jobs.filter(finished_at__lt=cutoff, transcript_expired_at__isnull=True, deleted_at__isnull=True)
            for pk in list(due.values_list("pk", flat=True)[:MAX_PER_RUN]):
                counts["transcripts"] += _expire_transcript(pk, now)
    if counts["audio"] or counts["transcripts"]:
        logger.info("Retention removed %(audio)s audio files and %(transcripts)s transcripts", counts, extra=counts)
    return counts
