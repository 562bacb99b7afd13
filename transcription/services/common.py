"""What the transcription services share: the row lock, the task hops, stored-audio removal."""

from __future__ import annotations

from django.core.files.storage import default_storage

from transcription.models import Transcription

Status = Transcription.Status


class LeaseLost(Exception):
    """The transcription was canceled or taken over by another attempt; stop working on it."""


def transcription_lock(*, transcription_id) -> Transcription:
    """The row, locked for this transaction. Money locks come after it (billing.lock_objects.account_lock)."""
    return Transcription.objects.select_for_update().get(pk=transcription_id)


def transcription_enqueue(*, transcription_id) -> None:
    from django_q.tasks import async_task

    async_task(
        "transcription.tasks.transcription_run_task",
        str(transcription_id),
        cluster="asr",
        task_name=f"asr-{transcription_id}",
    )


def webhook_enqueue(*, transcription_id, attempt: int = 1) -> None:
    from django_q.tasks import async_task

    async_task("transcription.tasks.webhook_deliver_task", str(transcription_id), attempt, cluster="default")


def audio_discard(name: str | None) -> None:
    if name:
        default_storage.delete(name)


def segment_dicts(segments) -> list[dict]:
    """Engine segments as the row stores them (speaker fields only when speakers were asked for)."""
    from transcription.diarize import segment_dict

    return [segment_dict(s) for s in segments]
