"""Stream session reads (always for one tenant)."""

from __future__ import annotations

from django.db.models import QuerySet

from streaming.models import StreamSession


def stream_list(*, tenant, status: str | None = None) -> QuerySet[StreamSession]:
    qs = StreamSession.objects.filter(tenant=tenant).select_related("api_key").order_by("-started_at", "-id")
    if status:
        qs = qs.filter(status=status)
    return qs


def stream_get(*, tenant, stream_id) -> StreamSession:
    return StreamSession.objects.get(tenant=tenant, pk=stream_id)


def stream_usage_by_day(*, tenant, start, end, tz) -> dict:
    """Closed streams per day of their end in [start, end): {day: {streams, audio_seconds, tokens}} (usage report)."""
    from django.db.models import Count, Sum
    from django.db.models.functions import TruncDate

    rows = (
        StreamSession.objects.filter(
            tenant=tenant, status=StreamSession.Status.CLOSED, ended_at__gte=start, ended_at__lt=end
        )
        .annotate(day=TruncDate("ended_at", tzinfo=tz))
        .values("day")
        .annotate(streams=Count("pk"), audio_seconds=Sum("audio_seconds"), tokens=Sum("billed_tokens"))
    )
    return {
        r["day"]: {"streams": r["streams"], "audio_seconds": r["audio_seconds"] or 0.0, "tokens": r["tokens"] or 0}
        for r in rows
    }


def stream_statement_lines(*, tenant, start, end) -> list:
    """Streams that ended in [start, end) with a charge, as monthly statement lines (billing asks)."""
    from billing.statements import JobLine

    rows = StreamSession.objects.filter(
        tenant=tenant, status=StreamSession.Status.CLOSED, ended_at__gte=start, ended_at__lt=end, billed_tokens__gt=0
    ).order_by("ended_at")
    return [
        JobLine(
            id=str(s.pk),
            finished_at=s.ended_at,
            filename=f"live stream ({s.mode}{', ' + s.wav_name if s.wav_name else ''})",
            duration_s=s.audio_seconds,
            billed_tokens=s.billed_tokens,
        )
        for s in rows
    ]
