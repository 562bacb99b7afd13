"""verbose_json from the real model as the official SDK sees it: word timestamps and segment scores (token ids,
avg_logprob, no_speech_prob) produced by the tiny SenseVoice fixture, validated strictly with the SDK's types.

The job runs through the worker's own service (transcription_run) with the test model, in this process.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from openai import OpenAI
from openai.types.audio import TranscriptionVerbose

from tests import audio_samples as samples
from tests.audio_helpers_core import tone_wav
from tests.conftest import assert_ledger_consistent, wait_for
from tests.transcription.test_async_wait import Uvicorn
from transcription import services
from transcription.models import Transcription

pytestmark = pytest.mark.slow

LEAD_S = 1.5  # silence before the English sentence: the words must be on the original timeline


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory) -> bytes:
    audio = np.concatenate([samples.silence(LEAD_S), samples.speak_fixture("en_welcome"), samples.silence(1.0)])
    return samples.write_wav(tmp_path_factory.mktemp("words") / "en.wav", audio).read_bytes()


@pytest.fixture
def server(transactional_db, tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path / "media"  # the worker here reads what the server stored
    running = Uvicorn(tmp_path / "media")
    yield running
    running.stop()


def run_next_job(tenant) -> threading.Thread:
    """The worker's part: run the next queued job with the real (test) model."""

    def run():
        try:
            job = wait_for(lambda: Transcription.objects.filter(tenant=tenant, status="queued").first(), timeout=30)
            services.transcription_run(transcription_id=job.pk)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_verbose_json_words_and_scores_come_from_the_model_and_validate_strictly(
    server, api_key, tenant, grant, speech_wav
):
    grant(tenant, 100_000)
    client = OpenAI(base_url=f"{server.url}/v1", api_key=api_key[1], max_retries=0, timeout=60.0)
    worker = run_next_job(tenant)
    verbose = client.audio.transcriptions.create(
        model="whisper-1",
        file=("en.wav", speech_wav, "audio/wav"),
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
    )
    worker.join()
    checked = TranscriptionVerbose.model_validate(verbose.model_dump(exclude_unset=True), strict=True)

    assert "welcome to the transcription service" in checked.text.lower()  # the tiny model's words
    assert [w.word for w in checked.words] == checked.text.split()  # each word of the text, with its times
    starts = [w.start for w in checked.words]
    assert starts == sorted(starts) and all(w.start <= w.end for w in checked.words)
    assert LEAD_S - 0.3 <= starts[0] and checked.words[-1].end <= checked.duration  # on the original timeline
    (segment,) = checked.segments
    assert segment.start <= starts[0] and checked.words[-1].end <= segment.end + 0.1
    # Scores from the model's CTC head: token ids of the text, a log-probability, a no-speech probability
    assert segment.tokens and all(isinstance(t, int) for t in segment.tokens)
    assert -5.0 < segment.avg_logprob <= 0.0 and 0.0 <= segment.no_speech_prob < 0.5
    job = Transcription.objects.get(tenant=tenant)
    assert job.options["word_timestamps"] is True and job.options["scores"] is True
    assert job.segments[0]["tokens"] == segment.tokens
    assert_ledger_consistent(tenant)


def test_words_alone_give_no_segments_and_plain_json_asks_for_neither(server, api_key, tenant, grant, speech_wav):
    grant(tenant, 100_000)
    client = OpenAI(base_url=f"{server.url}/v1", api_key=api_key[1], max_retries=0, timeout=60.0)
    worker = run_next_job(tenant)
    verbose = client.audio.transcriptions.create(
        model="gpt-4o-transcribe",
        file=("en.wav", speech_wav, "audio/wav"),
        response_format="verbose_json",
        timestamp_granularities=["word"],
    )
    worker.join()
    checked = TranscriptionVerbose.model_validate(verbose.model_dump(exclude_unset=True), strict=True)
    assert checked.segments is None and [w.word for w in checked.words] == checked.text.split()
    assert Transcription.objects.get(tenant=tenant).options.get("scores") is None  # no segments: no scores
    worker = run_next_job(tenant)
    plain = client.audio.transcriptions.create(model="gpt-4o-transcribe", file=("en.wav", speech_wav, "audio/wav"))
    worker.join()
    assert "welcome" in plain.text
    second = Transcription.objects.filter(tenant=tenant).order_by("-created_at").first()
    assert "word_timestamps" not in second.options and "scores" not in second.options
    assert all(set(s) <= {"start", "end", "text"} for s in second.segments)  # nothing it did not ask for


@pytest.mark.django_db
def test_a_model_without_word_timestamps_refuses_them_naming_the_param(api_client, tenant, grant, settings):
    from transcription.engines import reset_engines

    grant(tenant, 10_000)
    settings.ASR_ENGINES = {
        "default": {"BACKEND": "transcription.engines.funasr.FunASREngine",
                    "OPTIONS": {"model": "FunAudioLLM/Fun-ASR-Nano-2512"}},
    }  # fmt: skip
    reset_engines()
    try:
        upload = SimpleUploadedFile("a.wav", tone_wav(1.0), content_type="audio/wav")
        response = api_client.post(
            "/v1/audio/transcriptions",
            {"file": upload, "model": "whisper-1", "response_format": "verbose_json",
             "timestamp_granularities[]": ["word"]},
            format="multipart",
        )  # fmt: skip
    finally:
        reset_engines()
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert (error["param"], error["type"], error["code"]) == (
        "timestamp_granularities",
        "invalid_request_error",
        "unsupported_value",
    )
    assert "Fun-ASR-Nano" in error["message"]
    assert not Transcription.objects.exists()
