"""Reads of transcription jobs; every function is scoped to a tenant."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta

from asgiref.sync import sync_to_async
from django.db.models import Count, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from portal.errors import NotFound
from portal.longpoll import ColumnWatch
from transcription.models import HotwordList, Transcription


def transcription_list(
    *, tenant, status: str | None = None, created_after: datetime | None = None, created_before: datetime | None = None
) -> QuerySet[Transcription]:
    qs = Transcription.objects.filter(tenant=tenant, deleted_at__isnull=True).order_by("-created_at")
    if status:
        qs = qs.filter(status=status)
    if created_after:
        qs = qs.filter(created_at__gte=created_after)
    if created_before:
        qs = qs.filter(created_at__lt=created_before)
    return qs


def transcription_get(*, tenant, transcription_id) -> Transcription:
    """The tenant's job, or NotFound (also for another tenant's id and malformed ids)."""
    try:
        pk = uuid.UUID(str(transcription_id))
    except ValueError:
        raise NotFound("No such transcription.") from None
    job = Transcription.objects.filter(tenant=tenant, pk=pk, deleted_at__isnull=True).first()
    if job is None:
        raise NotFound("No such transcription.")
    return job


# One query per 50 ms looks at every job some client waits for (portal.longpoll.ColumnWatch).
_final_watch = ColumnWatch(Transcription, "status", Transcription.FINAL_STATUSES, interval_s=0.05)


async def transcription_await_final(*, tenant, transcription_id, timeout_s: float) -> Transcription:
    """The job once it is final, or as it is after `timeout_s` (long-poll; no model involved).

    For async views: it awaits in the event loop and holds no thread while the job runs; a shared
    watcher looks at all waited-for jobs in one query per tick, so a waiting client costs far less than
    a client polling over HTTP. Another tenant's id or a malformed id is NotFound.
    """
    job = await sync_to_async(transcription_get)(tenant=tenant, transcription_id=transcription_id)
    if job.is_final:
        return job
    if await _final_watch.wait(job.pk, timeout_s=timeout_s):
        return await sync_to_async(transcription_get)(tenant=tenant, transcription_id=transcription_id)
    await job.arefresh_from_db()
    return job


def transcription_cached_result(*, tenant, sha256: str, options_hash: str, model: str) -> Transcription | None:
    """A finished job of the SAME tenant with identical audio and options (never across tenants)."""
    return (
        Transcription.objects.filter(
            tenant=tenant,
            sha256=sha256,
            options_hash=options_hash,
            model=model,
            status=Transcription.Status.SUCCEEDED,
            deleted_at__isnull=True,
        )
        .order_by("-finished_at")
        .first()
    )


def transcription_identical(*, tenant, sha256: str, request_hash: str, finished_since: datetime | None = None):
    """The tenant's OpenAI-endpoint job for the same audio and request that is still queued or running, else
    (with `finished_since`) the latest one that succeeded since then; None if there is neither.

    A repeated request attaches to the first; an SDK retry of a request whose response was lost gets the second.
    """
    same = Transcription.objects.filter(
        tenant=tenant,
        sha256=sha256,
        request_hash=request_hash,
        source=Transcription.Source.OPENAI,
        idempotency_key__isnull=True,
        deleted_at__isnull=True,
    )
    active = same.filter(status__in=(Transcription.Status.QUEUED, Transcription.Status.RUNNING))
    found = active.order_by("created_at").first()
    if found is None and finished_since is not None:
        found = (
            same.filter(status=Transcription.Status.SUCCEEDED, finished_at__gte=finished_since)
            .order_by("-finished_at")
            .first()
        )
    return found


def usage_by_day(*, tenant, start: date, end: date) -> list[dict]:
    """Per day in [start, end]: finished jobs, audio seconds and billed tokens (zero days included)."""
    tz = timezone.get_current_timezone()
    lo = timezone.make_aware(datetime.combine(start, time.min), tz)
    hi = timezone.make_aware(datetime.combine(end + timedelta(days=1), time.min), tz)
    rows = (
        Transcription.objects.filter(
            tenant=tenant, status=Transcription.Status.SUCCEEDED, finished_at__gte=lo, finished_at__lt=hi
        )
        .annotate(day=TruncDate("finished_at", tzinfo=tz))
        .values("day")
        .annotate(jobs=Count("pk"), audio_seconds=Sum("duration_s"), tokens=Sum("billed_tokens"))
    )
    by_day = {r["day"]: r for r in rows}
    out = []
    day = start
    while day <= end:
        r = by_day.get(day, {})
        out.append(
            {
                "day": day,
                "jobs": r.get("jobs", 0) or 0,
                "audio_seconds": round(r.get("audio_seconds") or 0.0, 3),
                "tokens": r.get("tokens") or 0,
            }
        )
        day += timedelta(days=1)
    return out


def hotword_list_list(*, tenant) -> QuerySet[HotwordList]:
    return HotwordList.objects.filter(tenant=tenant)


def hotword_list_get(*, tenant, list_id) -> HotwordList:
    obj = HotwordList.objects.filter(tenant=tenant, pk=list_id).first() if str(list_id).isdigit() else None
    if obj is None:
        raise NotFound("No such hotword list.")
    return obj


def transcription_statement_lines(*, tenant, start: datetime, end: datetime) -> list:
    """The tenant's transcriptions that succeeded in [start, end), as monthly statement lines (billing asks)."""
    from billing.statements import JobLine

    rows = Transcription.objects.filter(
        tenant=tenant, status=Transcription.Status.SUCCEEDED, finished_at__gte=start, finished_at__lt=end
    ).order_by("finished_at")
    return [
        JobLine(
            id=str(t.pk),
            finished_at=t.finished_at,
            filename=t.filename,
            duration_s=t.duration_s or 0.0,
            billed_tokens=t.billed_tokens or 0,
        )
        for t in rows.only("id", "finished_at", "filename", "duration_s", "billed_tokens")
    ]
