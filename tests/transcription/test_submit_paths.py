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
