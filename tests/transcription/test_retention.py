"""Retention: audio (default 30 days) and transcripts (default never) expire per tenant; money history stays."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.utils import timezone

from billing.models import LedgerEntry
from tests.audio_helpers_core import tone_wav
from tests.conftest import assert_ledger_consistent
from transcription import services
from transcription.models import Transcription

pytestmark = pytest.mark.django_db(transaction=True)  # storage deletes run on commit


def finished(api_client, *, days_ago: float, text: str = "hello retention world", hotword: str = "x") -> Transcription:
    import io

    response = api_client.post(
        "/api/v1/transcriptions", {"file": io.BytesIO(tone_wav(1.0)), "hotwords": hotword}, format="multipart"
    )
    assert response.status_code == 202, response.content
    job_id = response.json()["id"]
    claim = services.transcription_claim(transcription_id=job_id)
    services.transcription_finalize(
        claim=claim, text=text, segments=[{"start": 0.0, "end": 1.0, "text": text}], language="en", duration_s=1.0
    )
    Transcription.objects.filter(pk=job_id).update(finished_at=timezone.now() - timedelta(days=days_ago))
    return Transcription.objects.get(pk=job_id)


def test_audio_expires_after_the_default_30_days(api_client, tenant, grant):
    grant(tenant, 1000)
    old = finished(api_client, days_ago=31, hotword="a")
    recent = finished(api_client, days_ago=29, hotword="b")
    queued = api_client.post("/api/v1/transcriptions", {"file": __import__("io").BytesIO(tone_wav(0.5))},
                             format="multipart").json()["id"]  # fmt: skip
    Transcription.objects.filter(pk=queued).update(created_at=timezone.now() - timedelta(days=90))
    old_name = old.audio.name
    ledger_before = list(LedgerEntry.objects.values_list("pk", "available_delta", "held_delta"))

    counts = services.transcription_retention_apply()

    assert counts == {"audio": 1, "transcripts": 0}
    old.refresh_from_db()
    assert not old.audio and old.audio_expired_at is not None and not default_storage.exists(old_name)
    assert old.text == "hello retention world" and old.tokens == 3 and old.billed_tokens == 3
    recent.refresh_from_db()
    assert recent.audio and recent.audio_expired_at is None and default_storage.exists(recent.audio.name)
    assert Transcription.objects.get(pk=queued).audio  # not finished: never expired
    assert list(LedgerEntry.objects.values_list("pk", "available_delta", "held_delta")) == ledger_before
    assert_ledger_consistent(tenant)
    assert services.transcription_retention_apply() == {"audio": 0, "transcripts": 0}  # idempotent

    body = api_client.get(f"/api/v1/transcriptions/{old.pk}").json()
    assert body["audio_expired_at"] is not None and body["transcript_expired_at"] is None
    assert body["text"] == "hello retention world"


def test_transcripts_expire_when_the_tenant_asks_and_usage_stays(api_client, tenant, grant):
    grant(tenant, 1000)
    tenant.transcript_retention_days = 7
    tenant.audio_retention_days = None
    tenant.save()
    job = finished(api_client, days_ago=8)
    keep = finished(api_client, days_ago=6, hotword="k")

    assert services.transcription_retention_apply() == {"audio": 0, "transcripts": 1}

    job.refresh_from_db()
    assert job.text == "" and job.segments == [] and job.transcript_expired_at is not None
    assert job.audio  # audio retention off
    body = api_client.get(f"/api/v1/transcriptions/{job.pk}").json()
    assert body["text"] is None and body["segments"] == [] and body["transcript_expired_at"] is not None
    assert body["usage"]["tokens"] == 3 and body["usage"]["billed_tokens"] == 3
    keep.refresh_from_db()
    assert keep.text and keep.transcript_expired_at is None
    assert_ledger_consistent(tenant)


def test_other_tenants_settings_apply_to_their_own_jobs_only(api_client, other_client, tenant, other_tenant, grant):
    grant(tenant, 1000)
    grant(other_tenant, 1000)
    other_tenant.audio_retention_days = None
    other_tenant.save()
    mine = finished(api_client, days_ago=40)
    response = other_client.post(
        "/api/v1/transcriptions", {"file": __import__("io").BytesIO(tone_wav(1.0))}, format="multipart"
    )
    theirs_id = response.json()["id"]
    claim = services.transcription_claim(transcription_id=theirs_id)
    services.transcription_finalize(claim=claim, text="keep", segments=[], language="en", duration_s=1.0)
    Transcription.objects.filter(pk=theirs_id).update(finished_at=timezone.now() - timedelta(days=400))

    assert services.transcription_retention_apply()["audio"] == 1
    mine.refresh_from_db()
    assert not mine.audio
    assert Transcription.objects.get(pk=theirs_id).audio


@pytest.mark.django_db  # pytest-django runs it before the transactional tests, whose flush drops migration rows
def test_the_daily_schedule_exists():
    from django_q.models import Schedule

    schedule = Schedule.objects.get(name="transcription-retention")
    assert schedule.func == "transcription.tasks.transcription_retention_task"
    assert schedule.schedule_type == Schedule.DAILY and schedule.repeats == -1


def test_dashboard_shows_the_expiry(client, tenant, grant, api_client, django_user_model):
    from allauth.account.models import EmailAddress

    from tenants.models import Membership

    grant(tenant, 1000)
    job = finished(api_client, days_ago=31)
    services.transcription_retention_apply()
    user = django_user_model.objects.create_user("o@t.test", "o@t.test", "x")
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    Membership.objects.create(tenant=tenant, user=user, role="owner")
    client.force_login(user)
    page = client.get(f"/app/transcriptions/{job.pk}/").content.decode()
    assert 'data-testid="audio-expired"' in page
