"""Submission is one path: hotwords merged once, audio stored outside the money transaction, engine warnings
reach the transcription, and the worker records the model it ran."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from tests.audio_helpers_core import tone_wav
from transcription import services
from transcription.models import HotwordList, Transcription

pytestmark = pytest.mark.django_db


def _wav(name="clip.wav"):
    return SimpleUploadedFile(name, tone_wav(1.0), content_type="audio/wav")


def test_another_tenants_hotword_list_is_not_found(api_client, other_tenant, tenant, grant):
    grant(tenant, 1000)
    foreign = HotwordList.objects.create(tenant=other_tenant, name="secret", words="机密")
    response = api_client.post(
        "/api/v1/transcriptions", {"file": _wav(), "hotword_list": foreign.pk}, format="multipart"
    )
    assert response.status_code == 404
    assert not Transcription.objects.exists()


def test_audio_is_stored_before_the_money_transaction(api_client, tenant, grant, monkeypatch):
    """The copy of up to MAX_UPLOAD_BYTES never runs while the account row is locked."""
    from django.core.files.storage import FileSystemStorage

    grant(tenant, 1000)
    from billing.models import LedgerEntry

    seen = []
    real_save = FileSystemStorage._save
    depth = len(connection.savepoint_ids)  # the test's own transaction

    def spy(self, name, content):
        seen.append((len(connection.savepoint_ids) > depth, LedgerEntry.objects.filter(kind="hold").exists()))
        return real_save(self, name, content)

    monkeypatch.setattr(FileSystemStorage, "_save", spy)
    response = api_client.post("/api/v1/transcriptions", {"file": _wav()}, format="multipart")
    assert response.status_code == 202, response.content
    assert seen == [(False, False)]  # no transaction of ours open, no hold placed yet


def test_a_refused_submission_leaves_no_stored_audio(api_client, tenant, grant, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    grant(tenant, 1)  # far too little: 402
    response = api_client.post("/api/v1/transcriptions", {"file": _wav()}, format="multipart")
    assert response.status_code == 402
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_engine_warnings_and_the_model_that_ran_reach_the_transcription(api_client, tenant, grant):
    """The fixture model (SenseVoice) cannot use hotwords: the API says so instead of silently ignoring them."""
    grant(tenant, 10_000)
    body = api_client.post(
        "/api/v1/transcriptions", {"file": _wav(), "hotwords": "公园", "vad": "false"}, format="multipart"
    ).json()
    Transcription.objects.filter(pk=body["id"]).update(model="configured-before-the-worker-ran")
    assert services.transcription_run(transcription_id=body["id"]) == "succeeded"
    done = api_client.get(f"/api/v1/transcriptions/{body['id']}").json()
    assert any("hotwords" in w for w in done["warnings"]), done
    assert Transcription.objects.get(pk=body["id"]).model != "configured-before-the-worker-ran"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_identical_openai_requests_at_the_same_time_make_one_job_and_one_hold(
    tenant, grant, monkeypatch, settings, tmp_path
):
    """Racing identical requests (OpenAI endpoint, no Idempotency-Key) are serialized by their own lock: one job,
    one hold, the rest attached; a different request of the same tenant is not held up by them."""
    import threading

    from django.db import connections

    from billing.models import LedgerEntry
    from tests.conftest import assert_ledger_consistent

    assert connection.vendor == "postgresql"
    settings.MEDIA_ROOT = tmp_path / "media"
    grant(tenant, 100_000)
    monkeypatch.setattr("transcription.services.submit.transcription_enqueue", lambda **kw: None)
    audio = tone_wav(1.0)
    barrier = threading.Barrier(6)
    results, errors = [], []

    def request(name: str, data: bytes) -> None:
        try:
            barrier.wait(10)
            job = services.transcription_create(
                tenant=tenant, uploaded_file=SimpleUploadedFile(name, data, content_type="audio/wav"), options={},
                source=Transcription.Source.OPENAI, attach_identical=True,
            )  # fmt: skip
            results.append((name, job.pk, getattr(job, "attached", False)))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=request, args=("same.wav", audio)) for _ in range(5)]
    threads.append(threading.Thread(target=request, args=("other.wav", tone_wav(1.0, freq=330.0))))
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    same = [r for r in results if r[0] == "same.wav"]
    assert len({pk for _n, pk, _a in same}) == 1, same
    assert sorted(a for *_x, a in same) == [False, True, True, True, True]
    assert Transcription.objects.filter(tenant=tenant).count() == 2
    assert LedgerEntry.objects.filter(tenant=tenant, kind="hold").count() == 2
    assert_ledger_consistent(tenant)
