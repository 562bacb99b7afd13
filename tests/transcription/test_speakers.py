"""Voiceprints (enroll, list, rename, delete, identify), speaker labels on jobs and exports, Xiaozhi's service,
all with the trained tiny CAM++ on espeak voices and sentences it never heard."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.audio_samples import has_tool, write_wav
from tests.speaker_samples import (
    EASY_PAIR,
    ENROLL_SENTENCES,
    HELD_OUT_SENTENCES,
    TEST_VOICES,
    conversation,
    say,
)
from transcription.models import Speaker, SpeakerIdentification, Transcription

pytestmark = pytest.mark.skipif(not (has_tool("espeak-ng") and has_tool("sox")), reason="needs espeak-ng and sox")


def wav(samples: np.ndarray, name: str = "voice.wav") -> SimpleUploadedFile:
    with tempfile.TemporaryDirectory() as tmp:
        data = write_wav(Path(tmp) / "v.wav", samples).read_bytes()
    return SimpleUploadedFile(name, data, content_type="audio/wav")


def voice(who: str, texts=ENROLL_SENTENCES) -> list[SimpleUploadedFile]:
    return [wav(say(text, TEST_VOICES[who]), f"{who}-{i}.wav") for i, text in enumerate(texts)]


def enroll(tenant, who: str, **extra) -> Speaker:
    from transcription.services.speakers import speaker_create, speaker_enroll

    speaker = speaker_create(tenant=tenant, name=who, uploaded_files=voice(who), **extra)
    assert speaker_enroll(speaker_id=speaker.pk) == "ready"
    speaker.refresh_from_db()
    return speaker


@pytest.fixture
def sync_tasks(monkeypatch, settings):
    """django-q2's own sync mode: a task enqueued after commit runs at once in this process (the real task)."""
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", True)
    settings.SPEAKER_WAIT_SECONDS = 20


def test_enroll_rename_delete_and_no_other_tenant_sees_it(api_client, other_client, tenant, settings):
    settings.SPEAKER_WAIT_SECONDS = 0  # no worker here: the answer is the pending speaker
    response = api_client.post("/api/v1/speakers", {"name": "Ann", "file": voice("female_gb")}, format="multipart")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "pending" and body["samples"] == 2 and "embedding" not in body
    from transcription.services.speakers import speaker_enroll

    assert speaker_enroll(speaker_id=body["id"]) == "ready"
    got = api_client.get(f"/api/v1/speakers/{body['id']}").json()
    assert got["status"] == "ready" and got["speech_s"] > 2 and got["model"]
    assert Speaker.objects.get(pk=body["id"]).pending_audio is None  # the samples are not kept

    for method in ("get", "patch", "delete"):
        assert getattr(other_client, method)(f"/api/v1/speakers/{body['id']}").status_code == 404
    assert other_client.get("/api/v1/speakers").json()["count"] == 0
    assert api_client.get("/api/v1/speakers").json()["results"][0]["id"] == body["id"]

    renamed = api_client.patch(f"/api/v1/speakers/{body['id']}", {"name": "Ann Lee"}, format="json")
    assert renamed.status_code == 200 and renamed.json()["name"] == "Ann Lee"
    assert api_client.delete(f"/api/v1/speakers/{body['id']}").status_code == 204
    assert not Speaker.objects.filter(pk=body["id"]).exists()  # the row held the only copy of the voiceprint
    assert api_client.get(f"/api/v1/speakers/{body['id']}").status_code == 404


def test_enrollment_without_speech_fails_with_a_reason(tenant):
    from transcription.services.speakers import speaker_create, speaker_enroll

    speaker = speaker_create(tenant=tenant, name="Silent", uploaded_files=[wav(np.zeros(32000, dtype=np.float32))])
    assert speaker_enroll(speaker_id=speaker.pk) == "failed"
    speaker.refresh_from_db()
    assert speaker.status == "failed" and "No speech" in speaker.error_message and speaker.embedding is None


def test_identify_six_of_six_on_held_out_sentences(tenant):
    from transcription.services.speakers import identification_create, identification_run

    who = ("male_us", "female_gb", "male_gb50")
    speakers = {w: enroll(tenant, w) for w in who}
    ids = [str(s.pk) for s in speakers.values()]
    right = 0
    for i, text in enumerate(HELD_OUT_SENTENCES):
        speaking = who[i % 3]
        query = identification_create(
            tenant=tenant, uploaded_file=wav(say(text, TEST_VOICES[speaking])), speaker_ids=ids
        )
        assert identification_run(identification_id=query.pk) == "done"
        query.refresh_from_db()
        right += query.speaker_id == speakers[speaking].pk
        assert query.pending_audio is None
    assert right == 6


def test_job_labels_enrolled_speakers_and_exports_show_them(api_client, tenant, grant):
    from transcription.services import transcription_run

    grant(tenant, 10_000)
    male, female = (enroll(tenant, w) for w in EASY_PAIR)
    samples, turns = conversation(EASY_PAIR)
    response = api_client.post(
        "/api/v1/transcriptions",
        {"file": wav(samples, "meeting.wav"), "diarize": "true", "speaker_ids": f"{male.pk},{female.pk}"},
        format="multipart",
    )
    assert response.status_code == 202, response.content
    job_id = response.json()["id"]
    assert response.json()["options"]["speaker_ids"] == [str(male.pk), str(female.pk)]
    assert transcription_run(transcription_id=job_id) == "succeeded"
    job = api_client.get(f"/api/v1/transcriptions/{job_id}").json()
    assert job["segments"], job
    named = [s["speaker"] for s in job["segments"]]
    assert set(named) == {"male_us", "female_gb"}
    assert all(isinstance(s["speaker_score"], float) for s in job["segments"])
    assert named[0] == turns[0].speaker

    vtt = api_client.get(f"/api/v1/transcriptions/{job_id}/transcript?format=vtt").content.decode()
    assert "<v male_us>" in vtt and "<v female_gb>" in vtt
    srt = api_client.get(f"/api/v1/transcriptions/{job_id}/transcript?format=srt").content.decode()
    txt = api_client.get(f"/api/v1/transcriptions/{job_id}/transcript?format=txt").content.decode()
    assert "female_gb: " in srt and txt.startswith("male_us: ")
    data = api_client.get(f"/api/v1/transcriptions/{job_id}/transcript?format=json").json()
    assert data["segments"][0]["speaker"] == "male_us"
    # Billing is per output token, as for every job (no speaker surcharge).
    row = Transcription.objects.get(pk=job_id)
    from billing import tokens

    assert row.billed_tokens == min(tokens.count(row.text), row.held_tokens)


def test_another_tenants_speaker_id_is_404_on_submit(api_client, other_client, other_tenant, grant):
    grant(other_tenant, 1000)
    theirs = enroll(other_tenant, "male_us")
    response = other_client.post(
        "/api/v1/transcriptions", {"file": wav(say("hello", TEST_VOICES["male_us"])), "speaker_ids": str(theirs.pk)},
        format="multipart",
    )  # fmt: skip
    assert response.status_code == 202
    mine = api_client.post(
        "/api/v1/transcriptions", {"file": wav(say("hello", TEST_VOICES["male_us"])), "speaker_ids": str(theirs.pk)},
        format="multipart",
    )  # fmt: skip
    assert mine.status_code == 404 and mine.json()["error"]["code"] == "not_found"


def test_rename_speakers_of_one_transcript(tenant):
    from transcription.services.speakers import transcription_speakers_rename

    job = Transcription.objects.create(
        tenant=tenant, sha256="0" * 64, status="succeeded", text="a b",
        segments=[{"start": 0, "end": 1, "text": "a", "speaker": "S1"}, {"start": 1, "end": 2, "text": "b", "speaker": "S2"}],
    )  # fmt: skip
    transcription_speakers_rename(transcription=job, names={"S1": "Ann", "S2": "S2"})
    job.refresh_from_db()
    assert [s["speaker"] for s in job.segments] == ["Ann", "S2"]


def test_xiaozhi_register_identify_health_delete(transactional_db, sync_tasks):
    from rest_framework.test import APIClient

    from tenants.services import api_key_create
    from tests.factories import TenantFactory

    mine, theirs = TenantFactory(slug="x1"), TenantFactory(slug="x2")
    _, key = api_key_create(tenant=mine, name="xiaozhi")
    _, other_key = api_key_create(tenant=theirs, name="other")
    client, other = APIClient(), APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {other_key}")

    for speaker_id, who in (("test1", "male_us"), ("test2", "female_gb")):
        response = client.post("/voiceprint/register", {"speaker_id": speaker_id, "file": voice(who)[0]})
        assert response.status_code == 200, response.content
        assert response.json()["success"] is True and "true" in response.content.decode()

    asked = wav(say(HELD_OUT_SENTENCES[0], TEST_VOICES["female_gb"]), "audio.wav")
    response = client.post("/voiceprint/identify", {"speaker_ids": "test1,test2", "file": asked})
    assert response.status_code == 200, response.content
    assert response.json()["speaker_id"] == "test2" and response.json()["score"] > 0.5
    assert SpeakerIdentification.objects.get().pending_audio is None

    assert APIClient().get(f"/voiceprint/health?key={key}").json() == {"total_voiceprints": 2, "status": "healthy"}
    assert APIClient().get("/voiceprint/health?key=wrong").status_code == 401
    again = wav(say(HELD_OUT_SENTENCES[1], TEST_VOICES["male_us"]), "audio.wav")
    assert other.post("/voiceprint/identify", {"speaker_ids": "test1", "file": again}).status_code == 404
    assert other.delete("/voiceprint/test1").status_code == 404
    deleted = client.delete("/voiceprint/test1")
    assert deleted.status_code == 200 and deleted.json()["success"] is True
    assert not Speaker.objects.filter(tenant=mine, external_id="test1").exists()
