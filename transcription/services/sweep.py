"""The sweep of transcriptions a worker left behind: expired leases re-queued (or failed past the attempt cap),
and queued ones whose task the broker may have lost enqueued again."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from transcription.models import Transcription
from transcription.services.common import Status, transcription_enqueue, transcription_lock
from transcription.services.lifecycle import _attempts_message, _fail_locked


def _requeue_expired(transcription_id, now, counts: dict) -> None:
    with transaction.atomic():
        t = transcription_lock(transcription_id=transcription_id)
        if t.status != Status.RUNNING or t.lease_expires_at is None or t.lease_expires_at >= now:
            return
        if t.attempt >= settings.JOB_MAX_ATTEMPTS:
            _fail_locked(t, "worker_lost", _attempts_message(t))
            counts["failed"] += 1
            return
        t.status = Status.QUEUED
        t.lease_expires_at = None
        t.enqueued_at = now
        t.save(update_fields=["status", "lease_expires_at", "enqueued_at"])
        transaction.on_commit(lambda: transcription_enqueue(transcription_id=transcription_id))
        counts["requeued"] += 1


def transcription_sweep() -> dict:
    """Re-queue transcriptions whose lease expired (worker died), fail those past the attempt cap, and
    re-enqueue queued ones whose task may have been lost by the broker."""
    now = timezone.now()
    counts = {"requeued": 0, "failed": 0, "reenqueued": 0}
    expired = Transcription.objects.filter(status=Status.RUNNING, lease_expires_at__lt=now).values_list("pk", flat=True)
    for transcription_id in list(expired):
        _requeue_expired(transcription_id, now, counts)
    stale_before = now - timedelta(seconds=settings.JOB_REQUEUE_AFTER_SECONDS)
    stale = Transcription.objects.filter(status=Status.QUEUED, enqueued_at__lt=stale_before)
    for transcription_id in list(stale.values_list("pk", flat=True)):
        if Transcription.objects.filter(pk=transcription_id, status=Status.QUEUED, enqueued_at__lt=stale_before).update(
            enqueued_at=now
        ):
            transcription_enqueue(transcription_id=transcription_id)
            counts["reenqueued"] += 1
    return counts
