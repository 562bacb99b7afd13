"""Connection hygiene (uvicorn): an error answered before the upload was used leaves the connection usable
or closes it honestly, so the SDK's next call on the same client (no retries) never meets a dropped socket."""

from __future__ import annotations

import os

import openai
import pytest
from openai import OpenAI

from tests.transcription.test_async_wait import Uvicorn

BIG = ("big.wav", b"RIFF" + os.urandom(6 * 1024 * 1024), "audio/wav")  # 6 MB: larger than any socket buffer
MEDIUM = ("medium.wav", b"RIFF" + os.urandom(3 * 1024 * 1024), "audio/wav")  # under the 4 MB limit


@pytest.fixture
def server(transactional_db, tmp_path, monkeypatch):
    monkeypatch.setenv("MAX_UPLOAD_BYTES", str(4 * 1024 * 1024))  # so that BIG is refused from its length
    running = Uvicorn(tmp_path / "media")
    yield running
    running.stop()


def test_early_errors_on_big_uploads_never_break_the_next_call(server, api_key, tenant, grant):
    grant(tenant, 10_000)
    client = OpenAI(base_url=f"{server.url}/v1", api_key=api_key[1], max_retries=0, timeout=30)
    wrong_key = client.with_options(api_key="wrong")  # the same HTTP client: the same connections
    for _ in range(3):
        with pytest.raises(openai.AuthenticationError):
            wrong_key.audio.transcriptions.create(model="whisper-1", file=BIG)
        assert client.models.list().data  # the next call on the same client
        with pytest.raises(openai.BadRequestError):
            client.audio.transcriptions.create(model="nope", file=MEDIUM)
        assert client.models.retrieve("whisper-1").id == "whisper-1"
        with pytest.raises(openai.APIStatusError) as too_big:
            client.audio.transcriptions.create(model="whisper-1", file=BIG)
        assert too_big.value.status_code == 413 and too_big.value.code == "file_too_large"
        with pytest.raises(openai.BadRequestError):
            client.audio.translations.create(model="whisper-1", file=MEDIUM)
        assert client.models.list().data
