"""Reads of transcription jobs; every function is scoped to a tenant."""

from __future__ import annotations

import time as time_module
import uuid
from datetime import date, datetime, time, timedelta

from django.db.models import Count, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from portal.errors import NotFound
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


def transcription_get(*, tenant, job_id) -> Transcription:
    """The tenant's job, or NotFound (also for another tenant's id and malformed ids)."""
    try:
        pk = uuid.UUID(str(job_id))
    except ValueError:
        raise NotFound("No such transcription.") from None
    job = Transcription.objects.filter(tenant=tenant, pk=pk, deleted_at__isnull=True).first()
    if job is None:
        raise NotFound("No such transcription.")
    return job


def transcription_wait_final(*, tenant, job_id, timeout_s: float) -> Transcription:
    """The job once it is final, or as it is after `timeout_s` (long-poll; no model involved).

    Checks one indexed column with a growing interval (5 ms .. 100 ms), so a waiting client costs
    far less than a client polling over HTTP.
    """
    job = transcription_get(tenant=tenant, job_id=job_id)
    deadline = time_module.monotonic() + max(0.0, timeout_s)
    interval = 0.005
    while not job.is_final and time_module.monotonic() < deadline:
        time_module.sleep(min(interval, max(0.0, deadline - time_module.monotonic())))
        interval = min(interval * 1.5, 0.1)
        status = Transcription.objects.filter(pk=job.pk).values_list("status", flat=True).first()
        if status in Transcription.FINAL_STATUSES or status is None:
            return transcription_get(tenant=tenant, job_id=job_id)
    if not job.is_final:
        job.refresh_from_db()
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
