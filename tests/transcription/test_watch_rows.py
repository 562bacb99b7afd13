"""The long-poll watcher reads its rows with one statement written once (portal.model_rows), not the ORM's query
compiled on every look (issue 13): it must hand waiters exactly what the ORM reads, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from django.forms.models import model_to_dict
from django.utils import timezone

from portal.longpoll import ColumnWatch
from transcription.models import Transcription

pytestmark = pytest.mark.django_db


def _watch() -> ColumnWatch:
    return ColumnWatch(Transcription, "status", Transcription.FINAL_STATUSES)


def _job(tenant, status: str, **fields) -> Transcription:
    return Transcription.objects.create(tenant=tenant, sha256="0" * 64, status=status, **fields)


def test_rows_read_are_the_orms_rows_whole(tenant):
    now = timezone.now()
    done = _job(
        tenant, "succeeded", text="你好 world", segments=[{"start": 0.0, "end": 1.2, "text": "你好"}],
        options={"language": "zh", "hotwords": ["阿里"]}, warnings=["clipped"], started_at=now, finished_at=now,
        duration_s=1.7, tokens=3, billed_tokens=3, held_tokens=14, cache_hit=False,
    )  # fmt: skip
    failed = _job(tenant, "failed", error_code="unsupported_audio", error_message="no", lease_expires_at=now)
    running = _job(tenant, "running")

    found = _watch()._reached([done.pk, failed.pk, running.pk, done.pk.__class__(int=0)])

    assert set(found) == {done.pk, failed.pk}  # not the running one, nor an id that does not exist
    for pk, row in found.items():
        expected = Transcription.objects.get(pk=pk)
        assert type(row) is Transcription and not row._state.adding and row._state.db == "default"
        assert model_to_dict(row) == model_to_dict(expected)
        for field in Transcription._meta.concrete_fields:  # every column, typed as the ORM types it
            assert getattr(row, field.attname) == getattr(expected, field.attname), field.name
            assert type(getattr(row, field.attname)) is type(getattr(expected, field.attname)), field.name
    assert found[done.pk].segments[0]["text"] == "你好" and found[done.pk].started_at == now


def test_more_ids_than_one_statement_takes_are_read_in_turns(tenant):
    jobs = [_job(tenant, "succeeded") for _ in range(7)]
    watch = _watch()
    watch.BATCH = 3
    assert set(watch._reached([job.pk for job in jobs])) == {job.pk for job in jobs}
    assert set(watch._statements) == {("default", 3), ("default", 1)}  # one text per count, written once


def test_a_status_read_is_the_orms_row_whole_and_scoped_to_its_tenant(tenant, other_tenant, django_assert_num_queries):
    """transcription_get reads with one statement written once (portal.model_rows), not the ORM's query: the same
    row, every column typed as the ORM types it; another tenant's id, a deleted job and a malformed id are 404s."""
    from portal.errors import NotFound
    from transcription.selectors import _whole_row_statement, transcription_get

    now = timezone.now()
    done = _job(
        tenant, "succeeded", text="你好 world", segments=[{"start": 0.0, "end": 1.2, "text": "你好"}],
        options={"language": "zh"}, warnings=["clipped"], started_at=now, finished_at=now, duration_s=1.7,
        tokens=3, billed_tokens=3, held_tokens=14,
    )  # fmt: skip
    with django_assert_num_queries(1):
        row = transcription_get(tenant=tenant, transcription_id=str(done.pk))
    expected = Transcription.objects.get(pk=done.pk)
    assert type(row) is Transcription and not row._state.adding and row._state.db == "default"
    for field in Transcription._meta.concrete_fields:
        assert getattr(row, field.attname) == getattr(expected, field.attname), field.name
        assert type(getattr(row, field.attname)) is type(getattr(expected, field.attname)), field.name
    assert row.tenant == tenant  # the relation loads as usual
    built = _whole_row_statement.cache_info().misses
    transcription_get(tenant=tenant, transcription_id=done.pk)
    assert _whole_row_statement.cache_info().misses == built  # the statement text is written once
    deleted = _job(tenant, "succeeded", deleted_at=now)
    for owner, job_id in ((other_tenant, done.pk), (tenant, deleted.pk), (tenant, "not-a-uuid")):
        with pytest.raises(NotFound):
            transcription_get(tenant=owner, transcription_id=job_id)
