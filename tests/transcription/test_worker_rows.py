"""The worker's per-job reads of the row as plain SQL (services.rows): the same answers as the ORM gave, and a
finalize that takes the claimed row reads only status, attempt and hold again, and settles with the hold as
it is now."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing.models import LedgerEntry
from billing.tokens import RULE_VERSION
from tests.audio_helpers_core import tone_wav
from tests.conftest import assert_ledger_consistent
from transcription import services
from transcription.models import Transcription
from transcription.services.lifecycle import _runnable, claim_with_row
from transcription.services.rows import transcription_lock_state, transcription_runnable, transcriptions_queued

Status = Transcription.Status


@pytest.fixture
def job(tenant, grant, settings, tmp_path, monkeypatch):
    settings.MEDIA_ROOT = tmp_path / "media"
    monkeypatch.setattr("transcription.services.submit.transcription_enqueue", lambda **kw: None)
    grant(tenant, 10_000)
    return services.transcription_create(
        tenant=tenant, uploaded_file=SimpleUploadedFile("a.wav", tone_wav(2.0), content_type="audio/wav"), options={}
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("status", "lease_s"),
    [
        (Status.QUEUED, None),
        (Status.RUNNING, 30),
        (Status.RUNNING, -1),
        (Status.RUNNING, None),
        (Status.SUCCEEDED, None),
        (Status.FAILED, -1),
        (Status.CANCELED, None),
    ],
)
def test_runnable_answers_as_the_orm_rule_does(job, status, lease_s):
    lease = None if lease_s is None else timezone.now() + timedelta(seconds=lease_s)
    Transcription.objects.filter(pk=job.pk).update(status=status, lease_expires_at=lease)

    assert transcription_runnable(transcription_id=job.pk) is _runnable(status, lease, timezone.now())
    assert transcription_runnable(transcription_id=str(job.pk)) is _runnable(status, lease, timezone.now())


@pytest.mark.django_db
def test_a_missing_transcription_is_not_runnable_and_has_no_lock_state(job):
    missing = uuid.uuid4()
    assert transcription_runnable(transcription_id=missing) is False
    assert claim_with_row(transcription_id=missing) is None
    with transaction.atomic(), pytest.raises(Transcription.DoesNotExist):
        transcription_lock_state(transcription_id=missing)


@pytest.mark.django_db
def test_lock_state_reads_the_row_under_its_lock(job):
    Transcription.objects.filter(pk=job.pk).update(status=Status.RUNNING, attempt=2, held_tokens=77)
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        assert transcription_lock_state(transcription_id=job.pk) == ("running", 2, 77)
    if connection.features.has_select_for_update:
        assert any(q["sql"].rstrip().endswith("FOR UPDATE") for q in queries.captured_queries)


@pytest.mark.django_db
def test_finalize_with_the_claimed_row_settles_the_hold_as_it_is_now(job, tenant):
    # Given a claimed transcription whose hold grew after the claim (decoded audio longer than probed)
    claim, row = claim_with_row(transcription_id=job.pk)
    held_at_claim = row.held_tokens
    covered = services.transcription_hold_cover(claim=claim, duration_s=60.0)
    assert covered > held_at_claim == row.held_tokens

    # When it is finalized with the row as claimed (one read of the row: its status, attempt and hold)
    segments = [
        {"start": 0.0, "end": 1.5, "text": "one two", "language": "en"},
        {"start": 2.0, "end": 3.0, "text": "三"},
    ]
    with CaptureQueriesContext(connection) as queries:
        assert services.transcription_finalize(
            claim=claim, row=row, text="one two three", segments=segments, language="en", duration_s=60.0,
            truncated=True, decode_ms=3, vad_ms=4, asr_ms=5, speech_s=2.5, model="m1", warnings=["w"],
        )  # fmt: skip

    # Then the result is stored as given, and the current hold was settled: billed the tokens, the rest released
    t = Transcription.objects.get(pk=job.pk)
    assert (t.status, t.tokens, t.billed_tokens, t.held_tokens) == ("succeeded", 3, 3, covered)
    assert (t.text, t.segments, t.language, t.duration_s, t.truncated) == ("one two three", segments, "en", 60.0, True)
    assert (t.decode_ms, t.vad_ms, t.asr_ms, t.speech_s, t.model, t.warnings) == (3, 4, 5, 2.5, "m1", ["w"])
    assert (t.progress, t.lease_expires_at, t.token_rule) == (1.0, None, RULE_VERSION)
    assert timezone.now() - timedelta(seconds=60) < t.finished_at <= timezone.now()
    entries = dict(LedgerEntry.objects.filter(transcription_id=job.pk).values_list("kind", "held_delta"))
    assert entries["debit"] == -3 and entries["release"] == -(covered - 3)
    assert_ledger_consistent(tenant)
    rows_read = [q for q in queries.captured_queries if q["sql"].startswith("SELECT") and "transcription_" in q["sql"]]
    assert len(rows_read) == 1, rows_read


@pytest.mark.django_db
def test_finalize_with_a_stale_row_changes_nothing(job, tenant):
    first, row = claim_with_row(transcription_id=job.pk)
    Transcription.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    second = services.transcription_claim(transcription_id=job.pk)
    assert second.attempt == first.attempt + 1

    assert not services.transcription_finalize(
        claim=first, row=row, text="stale", segments=[], language="en", duration_s=2
    )
    assert services.transcription_finalize(
        claim=second, row=row, text="fresh", segments=[], language="en", duration_s=2
    )

    t = Transcription.objects.get(pk=job.pk)
    assert (t.status, t.text, t.attempt) == ("succeeded", "fresh", second.attempt)
    assert LedgerEntry.objects.filter(transcription_id=job.pk, kind="debit").count() == 1
    assert_ledger_consistent(tenant)


@pytest.mark.django_db
def test_finalize_of_a_canceled_transcription_with_its_row_is_refused(job, tenant):
    claim, row = claim_with_row(transcription_id=job.pk)
    services.transcription_cancel(transcription=Transcription.objects.get(pk=job.pk))

    assert not services.transcription_finalize(
        claim=claim, row=row, text="late", segments=[], language="en", duration_s=2
    )

    t = Transcription.objects.get(pk=job.pk)
    assert (t.status, t.text, t.billed_tokens) == ("canceled", "", None)
    assert not LedgerEntry.objects.filter(transcription_id=job.pk, kind="debit").exists()
    assert_ledger_consistent(tenant)


@pytest.mark.django_db
def test_queued_is_whether_any_transcription_is_queued(job):
    assert transcriptions_queued()
    Transcription.objects.filter(pk=job.pk).update(status=Status.RUNNING)
    assert not transcriptions_queued()
    Transcription.objects.filter(pk=job.pk).update(status=Status.QUEUED)
    assert transcriptions_queued()


@pytest.mark.django_db(transaction=True)
def test_claim_ready_takes_the_oldest_eligible_rows_and_claims_them(tenant, grant, settings, tmp_path, monkeypatch):
    from transcription.services.batching import transcription_claim_ready

    settings.MEDIA_ROOT = tmp_path / "media"
    monkeypatch.setattr("transcription.services.submit.transcription_enqueue", lambda **kw: None)
    grant(tenant, 10_000)
    jobs = [
        services.transcription_create(
            tenant=tenant, uploaded_file=SimpleUploadedFile(f"{i}.wav", tone_wav(1.0, freq=300.0 + 40 * i)), options={}
        )
        for i in range(5)
    ]
    base = timezone.now() - timedelta(minutes=10)
    for i, job in enumerate(jobs):  # enqueued oldest last: the claim must order by enqueued_at, not by creation
        Transcription.objects.filter(pk=job.pk).update(enqueued_at=base - timedelta(seconds=i))
    started_before = base - timedelta(minutes=5)
    Transcription.objects.filter(pk=jobs[4].pk).update(attempt=settings.JOB_MAX_ATTEMPTS)  # oldest, at the cap
    Transcription.objects.filter(pk=jobs[3].pk).update(attempt=1, started_at=started_before)  # a retry
    Transcription.objects.filter(pk=jobs[2].pk).update(status=Status.RUNNING)

    claimed = transcription_claim_ready(limit=2)

    assert [t.pk for _, t in claimed] == [jobs[3].pk, jobs[1].pk]
    for claim, row in claimed:
        stored = Transcription.objects.get(pk=row.pk)
        assert (claim.attempt, row.attempt, stored.attempt) == (stored.attempt,) * 3
        assert (stored.status, stored.progress, stored.segments) == ("running", 0.0, [])
        assert stored.lease_expires_at == row.lease_expires_at > timezone.now()
        assert stored.started_at == row.started_at and stored.options == row.options and stored.tenant_id == tenant.pk
    assert Transcription.objects.get(pk=jobs[3].pk).started_at == started_before  # an earlier attempt's start
    assert Transcription.objects.get(pk=jobs[3].pk).attempt == 2
    assert Transcription.objects.get(pk=jobs[4].pk).status == "queued"  # past the cap: the sweeper fails it
    assert [t.pk for _, t in transcription_claim_ready(limit=5)] == [jobs[0].pk]
    assert transcription_claim_ready(limit=5) == []


@pytest.mark.django_db(transaction=True)
def test_claim_ready_skips_rows_another_worker_has_locked(
    require_postgres, tenant, grant, settings, tmp_path, monkeypatch
):
    import threading

    from django.db import close_old_connections

    from transcription.services.batching import transcription_claim_ready

    settings.MEDIA_ROOT = tmp_path / "media"
    monkeypatch.setattr("transcription.services.submit.transcription_enqueue", lambda **kw: None)
    grant(tenant, 10_000)
    first, second = (
        services.transcription_create(
            tenant=tenant, uploaded_file=SimpleUploadedFile(f"{i}.wav", tone_wav(1.0, freq=300.0 + 40 * i)), options={}
        )
        for i in range(2)
    )
    locked, release = threading.Event(), threading.Event()

    def hold_the_first():
        try:
            with transaction.atomic():
                Transcription.objects.select_for_update().get(pk=first.pk)
                locked.set()
                release.wait(10)
        finally:
            close_old_connections()

    holder = threading.Thread(target=hold_the_first)
    holder.start()
    try:
        assert locked.wait(10)
        assert [t.pk for _, t in transcription_claim_ready(limit=5)] == [second.pk]
    finally:
        release.set()
        holder.join()
    assert [t.pk for _, t in transcription_claim_ready(limit=5)] == [first.pk]


@pytest.mark.django_db
def test_claim_takes_over_an_expired_lease_and_fails_a_transcription_past_the_attempt_cap(job, tenant, settings):
    first, _ = claim_with_row(transcription_id=job.pk)
    started = Transcription.objects.get(pk=job.pk).started_at
    assert claim_with_row(transcription_id=job.pk) is None  # its lease is current
    Transcription.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))

    second, row = claim_with_row(transcription_id=job.pk)

    stored = Transcription.objects.get(pk=job.pk)
    assert second.attempt == first.attempt + 1 == stored.attempt == row.attempt
    assert (stored.status, stored.started_at, stored.segments) == ("running", started, [])
    assert stored.lease_expires_at == row.lease_expires_at > timezone.now()
    assert {f.attname: getattr(row, f.attname) for f in Transcription._meta.concrete_fields} == {
        f.attname: getattr(stored, f.attname) for f in Transcription._meta.concrete_fields
    }

    settings.JOB_MAX_ATTEMPTS = second.attempt
    Transcription.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert claim_with_row(transcription_id=job.pk) is None
    stored = Transcription.objects.get(pk=job.pk)
    assert (stored.status, stored.error_code, stored.attempt) == ("failed", "worker_lost", second.attempt)
    assert_ledger_consistent(tenant)
