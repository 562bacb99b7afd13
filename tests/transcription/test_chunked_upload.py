"""A chunked-transfer upload (no Content-Length, as streaming HTTP clients send) is read, not "No file was submitted"."""

from __future__ import annotations

import pytest
import requests

from tests.audio_helpers_core import tone_wav
from tests.transcription.test_async_wait import Uvicorn

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def server(tmp_path):
    uvicorn = Uvicorn(tmp_path / "media")
    yield uvicorn
    uvicorn.stop()


def _chunked(body: bytes, size: int = 8192):
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_chunked_multipart_upload_is_accepted_and_held(server, tenant, api_key, grant, settings):
    grant(tenant, 1000)
    prepared = requests.Request(
        "POST", server.url, files={"file": ("clip.wav", tone_wav(2.0), "audio/wav")}, data={"language": "en"}
    ).prepare()
    headers = {"Authorization": f"Bearer {api_key[1]}", "Content-Type": prepared.headers["Content-Type"]}
    response = requests.post(
        f"{server.url}/api/v1/transcriptions", data=_chunked(prepared.body), headers=headers, timeout=30
    )
    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in response.request.headers
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["filename"] == "clip.wav" and body["options"]["language"] == "en"
    assert body["usage"]["held_tokens"] == 16  # 2.0 s x 8 tokens/s: the real length was probed
