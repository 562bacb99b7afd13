"""Reads of transcription jobs; every function is scoped to a tenant."""

from __future__ import annotations

import functools
import uuid
from datetime import date, datetime, time, timedelta
from time import monotonic

from asgiref.sync import sync_to_async
from django.db.models import Count, Min, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from portal.errors import NotFound
from portal.longpoll import ColumnWatch
from portal.model_rows import ModelColumns
from transcription import rows_sql
from transcription.models import HotwordList, Speaker, SpeakerIdentification, Transcription
from transcription.rows_sql import column as _col


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
    """The tenant's job, whole, or NotFound (also for another tenant's id and malformed ids).

    One statement written once (portal.model_rows), the row built as the ORM builds it: every status read of a
    client that polls without `wait`, and a long-poll's read of a job already final, compiled the ORM's query
    anew (~0.3 ms of the web's CPU; issue 13)."""
    from django.db import connection

    try:
        pk = uuid.UUID(str(transcription_id))
    except ValueError:
        raise NotFound("No such transcription.") from None
    sql, columns = _whole_row_statement(connection.vendor)
    with connection.cursor() as cursor:
        cursor.execute(sql, [rows_sql.pk_value(pk), _tenant_id(tenant)])
        row = cursor.fetchone()
    if row is None:
        raise NotFound("No such transcription.")
    return columns.instance(row)


@functools.cache
def _whole_row_statement(vendor: str) -> tuple[str, ModelColumns]:
    """SELECT a tenant's live job by id, every column (quoted names only; built once per database vendor)."""
    columns = ModelColumns(Transcription, "t")
    return f"SELECT {columns.sql} FROM {rows_sql.table()} t WHERE {_live_job_where('t.')}", columns  # noqa: S608 - quoted names only


def _live_job_where(alias: str = "") -> str:
    """A tenant's live job by id: two parameters, the id (rows_sql.pk_value) and the tenant's id."""
    return f"{alias}{_col('id')} = %s AND {alias}{_col('tenant')} = %s AND {alias}{_col('deleted_at')} IS NULL"


# One query per 50 ms looks at every job some client waits for (portal.longpoll.ColumnWatch); on PostgreSQL a
# trigger's NOTIFY (migration 0009) wakes it as soon as a waited-for job is final, it reads only the jobs notified
# (and new waiters' when their notice may have come first), and every 0.5 s all of them.
FINAL_CHANNEL = "tingxie_transcription_final"
_final_watch = ColumnWatch(
    Transcription, "status", Transcription.FINAL_STATUSES, interval_s=0.05, channel=FINAL_CHANNEL
)


async def transcription_await_final(
    *, tenant, timeout_s: float, transcription_id=None, job: Transcription | None = None, since: float | None = None
) -> Transcription:
    """The job once it is final, or as it is after `timeout_s` (long-poll; no model involved).

    For async views: it awaits in the event loop and holds no thread while the job runs; a shared
    watcher reads the waited-for jobs in one query per look and hands each waiter its row, so a waiting
    client costs far less than a client polling over HTTP. Another tenant's id or a malformed id is NotFound.
    `job`: the tenant's job as a LongPollApiMixin handler read it (that handler's thread gave its database
    connection back already), else it is read here by `transcription_id`. `since`: time.monotonic() taken
    before `job` was read (the watcher then need not read the job again until its NOTIFY comes).
    """
    release = job is None
    if job is None:
        since = monotonic()
        job = await sync_to_async(transcription_get)(tenant=tenant, transcription_id=transcription_id)
    if job.is_final:
        return job
    row = await _final_watch.wait(job.pk, timeout_s=timeout_s, release=release, since=since)
    if row is not None:
        if row.deleted_at is not None:
            raise NotFound("No such transcription.")
        return row
    # Whole, also when the caller had only its status (transcription_status_of: the rest was deferred).
    await job.arefresh_from_db(fields=[f.attname for f in Transcription._meta.concrete_fields])
    return job


def transcription_status_of(*, tenant, transcription_id) -> Transcription:
    """The tenant's job with only its id, tenant and status loaded (the rest deferred: read on first use), or
    NotFound as transcription_get. One hand-written SELECT: a long-poll's first look, usually at an unfinished job,
    without compiling an ORM query (issue 13)."""
    from django.db import connection

    try:
        pk = uuid.UUID(str(transcription_id))
    except ValueError:
        raise NotFound("No such transcription.") from None
    sql = f"SELECT {_col('status')} FROM {rows_sql.table()} WHERE {_live_job_where()}"  # noqa: S608 - quoted names only
    with connection.cursor() as cursor:
        cursor.execute(sql, [rows_sql.pk_value(pk), _tenant_id(tenant)])
        row = cursor.fetchone()
    if row is None:
        raise NotFound("No such transcription.")
    return Transcription.from_db(connection.alias, ["id", "tenant_id", "status"], [pk, _tenant_id(tenant), row[0]])


def _first_pk(where: str, order: str, params: list):
    """The primary key of the first Transcription row matching `where` (column names of the model, %s params).

    For the per-submit lookups, which usually find nothing: Django compiles an ORM query anew on every call
    (about 0.6 to 0.9 ms of CPU for these, against 0.06 ms for the statement itself; issue 13), and a row is
    only worth loading whole when there is one.
    """
    from django.db import connection

    sql = f"SELECT {_col('id')} FROM {rows_sql.table()} WHERE {where} ORDER BY {order} LIMIT 1"  # noqa: S608 - quoted names only
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return row[0] if row else None


def _tenant_id(tenant) -> int:
    return tenant if isinstance(tenant, int) else tenant.pk


@functools.cache
def _cached_where_sql() -> str:
    """The cache lookup's condition (quoted names only; built once, as every submit uses it)."""
    return (
        f"{_col('tenant')} = %s AND {_col('sha256')} = %s AND {_col('options_hash')} = %s AND {_col('model')} = %s "
        f"AND {_col('status')} = %s AND {_col('deleted_at')} IS NULL"
    )


def _cached_where(*, tenant, sha256: str, options_hash: str, model: str) -> tuple[str, list]:
    params = [_tenant_id(tenant), sha256, options_hash, model, Transcription.Status.SUCCEEDED.value]
    return _cached_where_sql(), params


def transcription_cached_result(*, tenant, sha256: str, options_hash: str, model: str) -> Transcription | None:
    """A finished job of the SAME tenant with identical audio and options (never across tenants); the latest."""
    where, params = _cached_where(tenant=tenant, sha256=sha256, options_hash=options_hash, model=model)
    pk = _first_pk(where, f"{_col('finished_at')} DESC", params)
    return Transcription.objects.filter(pk=pk).first() if pk is not None else None


def no_cached_result_sql(*, tenant, sha256: str, options_hash: str, model: str) -> tuple[str, list]:
    """(sql, params) of a query that returns one row when transcription_cached_result() would find nothing: the
    guard of a submit's one-statement write (transcription.services.submit), which spares it the lookup's own
    round trip when there is no cached result, as for nearly every submit."""
    where, params = _cached_where(tenant=tenant, sha256=sha256, options_hash=options_hash, model=model)
    return f"SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM {rows_sql.table()} WHERE {where})", params  # noqa: S608


def transcription_identical(*, tenant, sha256: str, request_hash: str, finished_since: datetime | None = None):
    """The tenant's OpenAI-endpoint job for the same audio and request that is still queued or running, else
    (with `finished_since`) the latest one that succeeded since then; None if there is neither.

    A repeated request attaches to the first; an SDK retry of a request whose response was lost gets the second.
    """
    pk = _first_pk(
        f"{_col('tenant')} = %s AND {_col('sha256')} = %s AND {_col('request_hash')} = %s AND {_col('source')} = %s "
        f"AND {_col('idempotency_key')} IS NULL AND {_col('deleted_at')} IS NULL AND {_col('status')} IN (%s, %s)",
        _col("created_at"),
        [_tenant_id(tenant), sha256, request_hash, Transcription.Source.OPENAI.value,
         Transcription.Status.QUEUED.value, Transcription.Status.RUNNING.value],
    )  # fmt: skip
    found = Transcription.objects.filter(pk=pk).first() if pk is not None else None
    if found is None and finished_since is not None:
        same = Transcription.objects.filter(
            tenant=tenant,
            sha256=sha256,
            request_hash=request_hash,
            source=Transcription.Source.OPENAI,
            idempotency_key__isnull=True,
            deleted_at__isnull=True,
        )
        found = (
            same.filter(status=Transcription.Status.SUCCEEDED, finished_at__gte=finished_since)
            .order_by("-finished_at")
            .first()
        )
    return found


def usage_by_day(*, tenant, start: date, end: date) -> list[dict]:
    """Per day in [start, end]: finished jobs, audio seconds and billed tokens (zero days included), live streams
    included (registered usage extras)."""
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
    extras = [source(tenant=tenant, start=lo, end=hi, tz=tz) for source in _usage_extras]
    out = []
    day = start
    while day <= end:
        r = by_day.get(day, {})
        row = {
            "day": day,
            "jobs": r.get("jobs", 0) or 0,
            "audio_seconds": r.get("audio_seconds") or 0.0,
            "tokens": r.get("tokens") or 0,
        }
        for extra in extras:
            for key, value in extra.get(day, {}).items():
                row[key] = row.get(key, 0) + value
        row["audio_seconds"] = round(row["audio_seconds"], 3)
        out.append(row)
        day += timedelta(days=1)
    return out


# Billed work other apps do (live streams) joins the usage report: each registers at start-up (AppConfig.ready)
# a `source(*, tenant, start, end, tz) -> {day: {"audio_seconds", "tokens", and counts of its own}}`.
_usage_extras: list = []


def usage_extra_register(source) -> None:
    if source not in _usage_extras:
        _usage_extras.append(source)


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


def transcription_queue_stats() -> dict:
    """Active jobs by status and the oldest queued one's enqueue time: reads of the (status) index only."""
    active = (Transcription.Status.QUEUED, Transcription.Status.RUNNING)
    rows = Transcription.objects.filter(status__in=active).values("status").annotate(n=Count("pk")).order_by()
    counts = {status: 0 for status in active} | {row["status"]: row["n"] for row in rows}
    oldest = Transcription.objects.filter(status=Transcription.Status.QUEUED).aggregate(oldest=Min("enqueued_at"))
    return {"counts": counts, "oldest_enqueued_at": oldest["oldest"]}


# --- speakers (voiceprints) ----------------------------------------------------------------------------


def speaker_list(*, tenant) -> QuerySet[Speaker]:
    return Speaker.objects.filter(tenant=tenant).defer("pending_audio", "embedding").order_by("name", "created_at")


def speaker_get(*, tenant, speaker_id) -> Speaker:
    """The tenant's speaker, or NotFound (also for another tenant's id and malformed ids)."""
    try:
        pk = uuid.UUID(str(speaker_id))
    except ValueError:
        raise NotFound("No such speaker.") from None
    speaker = Speaker.objects.filter(tenant=tenant, pk=pk).defer("pending_audio").first()
    if speaker is None:
        raise NotFound("No such speaker.")
    return speaker


def speaker_get_external(*, tenant, external_id: str) -> Speaker:
    speaker = Speaker.objects.filter(tenant=tenant, external_id=external_id).defer("pending_audio").first()
    if speaker is None:
        raise NotFound("No such speaker.")
    return speaker


def speaker_list_by_ids(*, tenant, speaker_ids: list[str]) -> list[Speaker]:
    """The tenant's speakers named by id or by external id (Xiaozhi's speaker_id), in the order asked; ids that
    name none of the tenant's speakers are left out (the caller compares the counts)."""
    wanted = list(dict.fromkeys(str(i).strip() for i in speaker_ids if str(i).strip()))
    keys = [_canonical(v) for v in wanted]
    uuids = [k for k in keys if isinstance(k, uuid.UUID)]
    found = Speaker.objects.filter(tenant=tenant).filter(Q(pk__in=uuids) | Q(external_id__in=wanted))
    by_key: dict = {}
    for speaker in found.defer("pending_audio"):
        by_key[speaker.pk] = speaker
        if speaker.external_id:
            by_key[speaker.external_id] = speaker
    out: list[Speaker] = []
    for value, key in zip(wanted, keys, strict=True):
        speaker = by_key.get(value) or by_key.get(key)
        if speaker is not None and speaker not in out:
            out.append(speaker)
    return out


def _canonical(value: str):
    try:
        return uuid.UUID(value)
    except ValueError:
        return value


_speaker_watch = ColumnWatch(Speaker, "status", (Speaker.Status.READY, Speaker.Status.FAILED), interval_s=0.05)
_identification_watch = ColumnWatch(
    SpeakerIdentification, "status", SpeakerIdentification.FINAL_STATUSES, interval_s=0.05
)


async def speaker_await_enrolled(*, tenant, speaker_id, timeout_s: float) -> Speaker:
    """The speaker once embedded (ready or failed), or as it is after timeout_s (long-poll, no thread held)."""
    speaker = await sync_to_async(speaker_get)(tenant=tenant, speaker_id=speaker_id)
    if speaker.status == Speaker.Status.PENDING:
        await _speaker_watch.wait(speaker.pk, timeout_s=timeout_s)
        speaker = await sync_to_async(speaker_get)(tenant=tenant, speaker_id=speaker_id)
    return speaker


async def identification_await(*, identification: SpeakerIdentification, timeout_s: float) -> SpeakerIdentification:
    if identification.status not in SpeakerIdentification.FINAL_STATUSES:
        await _identification_watch.wait(identification.pk, timeout_s=timeout_s)
        identification = await SpeakerIdentification.objects.select_related("speaker").aget(pk=identification.pk)
    return identification


def speaker_voiceprints(*, tenant, speaker_ids: list[str], model: str):
    """Voiceprints of the tenant's ready speakers among `speaker_ids` made by `model` (deleted ones are gone)."""
    import numpy as np

    from transcription.diarize import Voiceprint

    rows = Speaker.objects.filter(tenant=tenant, pk__in=speaker_ids, status=Speaker.Status.READY, embedding_model=model)
    return tuple(
        Voiceprint(speaker_id=str(s.pk), name=s.name, embedding=np.frombuffer(bytes(s.embedding), dtype=np.float32))
        for s in rows.exclude(embedding=None).order_by("name", "created_at")
    )
