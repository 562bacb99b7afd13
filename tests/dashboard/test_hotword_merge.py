"""The API and the dashboard submit hotwords through one merge rule: equal inputs, equal options and cache key."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from tests.audio_helpers_core import tone_wav
from transcription.models import HotwordList, Transcription

pytestmark = pytest.mark.django_db


def _wav(name="clip.wav"):
    return SimpleUploadedFile(name, tone_wav(1.0), content_type="audio/wav")


def test_api_and_dashboard_merge_hotwords_the_same_way(api_client, tenant, grant, make_member, login):
    grant(tenant, 10_000)
    saved = HotwordList.objects.create(tenant=tenant, name="place", words="公园\n散步")
    via_api = api_client.post(
        "/api/v1/transcriptions",
        {"file": _wav(), "hotwords": "散步\n天气", "hotword_list": saved.pk},
        format="multipart",
    ).json()
    owner = make_member(tenant, "owner")
    response = login(owner).post(
        reverse("dashboard:transcription_new"),
        {"files": _wav(), "language": "auto", "itn": "on", "hotwords": "散步\n天气", "hotword_list": saved.pk},
    )
    assert response.status_code in (200, 302)
    via_dashboard = Transcription.objects.exclude(pk=via_api["id"]).get()
    assert via_api["options"]["hotwords"] == ["公园", "散步", "天气"]
    assert via_dashboard.options["hotwords"] == via_api["options"]["hotwords"]
    assert via_dashboard.options_hash == Transcription.objects.get(pk=via_api["id"]).options_hash
