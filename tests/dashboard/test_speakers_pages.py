"""Dashboard: the diarize checkbox, coloured speaker turns renamed per transcript, the Speakers page."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from tests.audio_helpers_core import tone_wav
from transcription.models import Speaker, Transcription

pytestmark = pytest.mark.django_db


def _wav(name="clip.wav"):
    return SimpleUploadedFile(name, tone_wav(2.0), content_type="audio/wav")


def test_upload_with_diarize_asks_for_speakers(tenant, grant, owner_client):
    grant(tenant, 10_000)
    response = owner_client.post(
        reverse("dashboard:transcription_new"), {"files": _wav(), "language": "auto", "diarize": "on", "speakers": 2}
    )
    assert response.status_code == 302
    job = Transcription.objects.get(tenant=tenant)
    assert job.options["diarize"] is True and job.options["min_speakers"] == job.options["max_speakers"] == 2


def test_turns_are_coloured_and_renamed_for_this_transcript(tenant, owner_client, make_job):
    job = make_job(
        tenant,
        segments=[
            {"start": 0.0, "end": 1.0, "text": "hello", "speaker": "S1"},
            {"start": 1.0, "end": 2.0, "text": "hi", "speaker": "S2"},
        ],
    )
    page = owner_client.get(reverse("dashboard:transcription_detail", args=[job.pk])).content.decode()
    assert 'class="speaker spk-0"' in page and 'class="speaker spk-1"' in page
    owner_client.post(
        reverse("dashboard:transcription_speakers", args=[job.pk]), {"label": ["S1", "S2"], "name": ["Ann", "S2"]}
    )
    job.refresh_from_db()
    assert [s["speaker"] for s in job.segments] == ["Ann", "S2"]
    vtt = owner_client.get(reverse("dashboard:transcription_download", args=[job.pk, "vtt"])).content.decode()
    assert "<v Ann>hello" in vtt


def test_speakers_page_enrolls_and_another_tenant_gets_404(tenant, other_tenant, owner_client):
    response = owner_client.post(reverse("dashboard:speakers"), {"name": "Ann", "files": _wav()})
    assert response.status_code == 302
    speaker = Speaker.objects.get(tenant=tenant)
    assert speaker.status == "pending" and speaker.samples == 1
    assert "Ann" in owner_client.get(reverse("dashboard:speakers")).content.decode()
    theirs = Speaker.objects.create(tenant=other_tenant, name="Bob")
    assert owner_client.post(reverse("dashboard:speaker_delete", args=[theirs.pk])).status_code == 404
    owner_client.post(reverse("dashboard:speaker_delete", args=[speaker.pk]))
    assert not Speaker.objects.filter(pk=speaker.pk).exists()
