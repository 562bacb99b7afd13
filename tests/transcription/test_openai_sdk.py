"""The OpenAI-compatible surface as the official SDK sees it (uvicorn, no ASR worker): every answer is
validated with the SDK's own pydantic types (strict), every refusal is an OpenAI-shaped error.

Jobs are finished through the worker's own services (claim, heartbeat, finalize), as a worker would.
"""

from __future__ import annotations

import threading
import typing

import openai
import pytest
import requests
from django.db import connection
from openai import OpenAI
from openai.types import AudioModel, Model
from openai.types.audio import (
    Transcription as SdkTranscription,
)
from openai.types.audio import (
    TranscriptionTextDeltaEvent,
    TranscriptionTextDoneEvent,
    TranscriptionVerbose,
)

from tests.audio_helpers_core import tone_wav
from tests.conftest import assert_ledger_consistent, wait_for
from tests.transcription.test_async_wait import Uvicorn
from transcription import services
from transcription.models import Transcription

AUDIO = ("clip.wav", tone_wav(1.0), "audio/wav")
SEGMENTS = [{"start": 0.2, "end": 1.1, "text": "你好"}, {"start": 1.5, "end": 2.4, "text": "hello there"}]


@pytest.fixture
def server(transactional_db, tmp_path):
    running = Uvicorn(tmp_path / "media")
    yield running
    running.stop()


@pytest.fixture
def client(server, api_key):
    return OpenAI(base_url=f"{server.url}/v1", api_key=api_key[1], max_retries=0, timeout=3.0)


def strict(model, value):
    return model.model_validate(value.model_dump(exclude_unset=True), strict=True)


def finish_in_background(tenant, *, stepwise: threading.Event | None = None) -> threading.Thread:
    """A worker's part: claim the next queued job, report segments with heartbeats, finalize."""

    def run():
        try:
            work()
        finally:
            connection.close()

    def work():
        job = wait_for(lambda: Transcription.objects.filter(tenant=tenant, status="queued").first(), timeout=20)
        claim = services.transcription_claim(transcription_id=job.pk)
        if stepwise is not None:
            services.transcription_heartbeat(claim=claim, progress=0.3, force=True, segments=SEGMENTS[:1])
            assert stepwise.wait(20), "the first delta reached the client before the job went on"
            services.transcription_heartbeat(claim=claim, progress=0.6, force=True, segments=SEGMENTS)
        text = "你好 hello there"
        assert services.transcription_finalize(claim=claim, text=text, segments=SEGMENTS, language="zh", duration_s=2.5)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_models_and_refusals_are_openai_shaped(server, client, tenant, grant):
    grant(tenant, 10_000)
    # Models: what this deployment serves, aliases included, each a valid SDK Model
    listed = [strict(Model, m).id for m in client.models.list()]
    assert {"whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe", "sensevoice_trained"} <= set(listed)
    assert not any(m.startswith("/") for m in listed), "a local model directory is named, not its path"
    assert strict(Model, client.models.retrieve("gpt-4o-transcribe")).owned_by == "tingxie"
    assert "gpt-4o-transcribe-diarize" in listed  # served: the job runs with diarize
    assert strict(Model, client.models.retrieve("gpt-4o-transcribe-diarize")).id == "gpt-4o-transcribe-diarize"
    with pytest.raises(openai.NotFoundError) as missing:
        client.models.retrieve("whisper-2")
    assert (missing.value.code, missing.value.type, missing.value.param) == (
        "model_not_found",
        "invalid_request_error",
        "model",
    )
    # Translation: a clear 400
    with pytest.raises(openai.BadRequestError) as translation:
        client.audio.translations.create(model="whisper-1", file=AUDIO)  # (the SDK marks it deprecated)
    assert translation.value.code == "translation_not_supported" and "not offered" in translation.value.message
    # Options the model cannot honour are refused, naming the parameter (not inside the message)
    refusals = {
        "response_format": {"response_format": "diarized_json"},  # needs model=gpt-4o-transcribe-diarize
        "timestamp_granularities": {"timestamp_granularities": ["word"]},  # needs verbose_json
        "include": {"include": ["logprobs"]},
        "language": {"language": "xx"},
        "stream": {"stream": True, "response_format": "srt"},
    }
    for param, extra in refusals.items():
        with pytest.raises(openai.BadRequestError) as refused:
            client.audio.transcriptions.create(**{"model": "gpt-4o-transcribe", "file": AUDIO, **extra})
        error = refused.value
        assert (error.param, error.type) == (param, "invalid_request_error"), (param, error.body)
        assert error.message and not error.message.startswith(f"{param}:")
    with pytest.raises(openai.BadRequestError) as unknown:
        client.audio.transcriptions.create(model="nope", file=AUDIO)
    assert unknown.value.code == "model_not_found" and "whisper-1" in unknown.value.message
    # Authentication and unknown paths: the same shape
    bad = OpenAI(base_url=f"{server.url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as denied:
        bad.models.list()
    assert (denied.value.code, denied.value.type) == ("invalid_api_key", "invalid_request_error")
    lost = requests.get(f"{server.url}/v1/nope", timeout=10)
    assert lost.status_code == 404 and set(lost.json()["error"]) == {"message", "type", "param", "code"}
    assert Transcription.objects.count() == 0, "nothing refused made a job"


def test_every_sdk_audio_model_is_served_or_refused_clearly(server, api_key, tenant, grant):
    grant(tenant, 10_000)
    client = OpenAI(base_url=f"{server.url}/v1", api_key=api_key[1], max_retries=0, timeout=3.0)
    outcome = {}
    for model in typing.get_args(AudioModel):
        try:
            client.audio.transcriptions.create(model=model, file=AUDIO)
        except openai.APIStatusError as error:  # no worker: an accepted model's job times out (504)
            outcome[model] = (error.status_code, error.code)
    assert set(outcome.values()) == {(504, "timeout")}
    # Identical requests attach to one job; the diarize model's options (speakers) make a second one.
    assert Transcription.objects.filter(tenant=tenant).count() == 2


def test_each_format_validates_with_the_sdk_types(server, client, tenant, grant):
    grant(tenant, 10_000)
    worker = finish_in_background(tenant)
    first = client.audio.transcriptions.create(model="gpt-4o-transcribe", file=AUDIO)
    worker.join()
    # json: token usage for gpt-4o models (the tokens billed)
    job = Transcription.objects.get(tenant=tenant)
    assert strict(SdkTranscription, first).text == "你好 hello there"
    assert first.usage.type == "tokens" and first.usage.output_tokens == job.billed_tokens > 0
    # whisper-1 is billed by duration at OpenAI: its json usage says so; gpt-transcribe names the language
    whisper = strict(SdkTranscription, client.audio.transcriptions.create(model="whisper-1", file=AUDIO))
    assert whisper.usage.type == "duration" and whisper.usage.seconds == 2.5
    languages = client.audio.transcriptions.create(model="gpt-transcribe", file=AUDIO).languages
    assert [language.code for language in languages] == ["zh"]
    # verbose_json: the language by name, duration usage, segments with only what the model produced. Its job
    # asks the model for segment scores too (options differ), so it is a job of its own.
    worker = finish_in_background(tenant)
    verbose = client.with_options(timeout=20.0).audio.transcriptions.create(
        model="whisper-1", file=AUDIO, response_format="verbose_json", timestamp_granularities=["segment"]
    )
    worker.join()
    body = verbose.model_dump(exclude_unset=True)
    segments = body.pop("segments")
    checked = TranscriptionVerbose.model_validate(body, strict=True)
    assert (checked.language, checked.duration, checked.usage.type) == ("chinese", 2.5, "duration")
    assert [(s["id"], s["start"], s["end"], s["text"]) for s in segments] == [
        (0, 0.2, 1.1, "你好"),
        (1, 1.5, 2.4, "hello there"),
    ]
    assert [s["seek"] for s in segments] == [20, 150] and all(s["temperature"] == 0.0 for s in segments)
    assert all(s["compression_ratio"] > 0 for s in segments)
    # Scores are the model's (test_openai_words); the stand-in worker here stored none: null, never invented.
    assert all(s["tokens"] is None and s["avg_logprob"] is None and s["no_speech_prob"] is None for s in segments)
    # text, srt, vtt
    assert client.audio.transcriptions.create(model="whisper-1", file=AUDIO, response_format="text").startswith(
        "你好 hello there"
    )
    srt = client.audio.transcriptions.create(model="whisper-1", file=AUDIO, response_format="srt")
    assert srt.startswith("1\n00:00:00,200 --> 00:00:01,100\n你好")
    vtt = client.audio.transcriptions.create(model="whisper-1", file=AUDIO, response_format="vtt")
    assert vtt.startswith("WEBVTT")
    assert_ledger_consistent(tenant)


def test_stream_sends_a_delta_per_segment_as_the_job_progresses(server, client, tenant, grant):
    grant(tenant, 10_000)
    first_delta = threading.Event()
    worker = finish_in_background(tenant, stepwise=first_delta)
    client = client.with_options(timeout=20.0)
    events = []
    stream = client.audio.transcriptions.create(model="gpt-4o-mini-transcribe", file=AUDIO, stream=True)
    for event in stream:
        events.append(event)
        if len(events) == 1:
            first_delta.set()  # the worker only goes on once the client has seen the first segment
    worker.join()
    assert [type(e) for e in events] == [TranscriptionTextDeltaEvent] * 2 + [TranscriptionTextDoneEvent]
    deltas = [strict(TranscriptionTextDeltaEvent, e).delta for e in events[:2]]
    done = strict(TranscriptionTextDoneEvent, events[2])
    assert deltas == ["你好", " hello there"] and "".join(deltas) == done.text == "你好 hello there"
    job = Transcription.objects.get(tenant=tenant)
    assert done.usage.type == "tokens" and done.usage.total_tokens == job.billed_tokens > 0
    assert_ledger_consistent(tenant)


def test_a_failed_job_ends_the_stream_with_an_error(server, client, tenant, grant):
    grant(tenant, 10_000)

    def fail():
        try:
            job = wait_for(lambda: Transcription.objects.filter(tenant=tenant).first(), timeout=20)
            services.transcription_fail(transcription_id=job.pk, code="unsupported_audio", message="No audio stream.")
        finally:
            connection.close()

    thread = threading.Thread(target=fail)
    thread.start()
    stream = client.with_options(timeout=20.0).audio.transcriptions.create(
        model="gpt-4o-transcribe", file=AUDIO, stream=True
    )
    with pytest.raises(openai.APIError) as failed:
        list(stream)
    thread.join()
    assert "No audio stream." in failed.value.message
    assert_ledger_consistent(tenant)


@pytest.mark.django_db
def test_prompt_feeds_the_hotwords_of_a_model_that_has_them(api_client, tenant, grant, settings, tmp_path):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from transcription.engines import reset_engines

    settings.MEDIA_ROOT = tmp_path
    settings.OPENAI_WAIT_SECONDS = 0
    grant(tenant, 10_000)

    def submit(prompt: str) -> Transcription:
        upload = SimpleUploadedFile("a.wav", tone_wav(1.0), content_type="audio/wav")
        response = api_client.post(
            "/v1/audio/transcriptions", {"file": upload, "model": "whisper-1", "prompt": prompt}, format="multipart"
        )
        assert response.status_code == 504, response.content  # no worker here
        return Transcription.objects.get(pk=response.json()["error"]["transcription_id"])

    # SenseVoice (the test model) has no hotwords: the prompt, a soft hint, is not used
    assert submit("Kubernetes, 阿里巴巴").options["hotwords"] == []
    # SeACo-Paraformer has: the prompt's words and names become its hotwords
    settings.ASR_ENGINES = {
        "default": {
            "BACKEND": "transcription.engines.funasr.FunASREngine",
            "OPTIONS": {"model": "iic/speech_seaco_paraformer_large_asr_nat-zh-cn-16k-common-vocab8404-pytorch"},
        }
    }
    reset_engines()
    try:
        assert submit("Kubernetes, 阿里巴巴；Istio").options["hotwords"] == ["Kubernetes", "阿里巴巴", "Istio"]
    finally:
        reset_engines()
