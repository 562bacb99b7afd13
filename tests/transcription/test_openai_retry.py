"""Retry-safe billing on the OpenAI endpoint, driven by the official SDK (default retries) against uvicorn.

No ASR worker runs: jobs stay queued unless the test finishes them through the worker's own services
(transcription_claim + transcription_finalize), exactly as a worker would.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx2
import openai
import pytest
from django.db import connection
from openai import OpenAI
from openai.types.audio import Transcription as SdkTranscription

from billing.models import LedgerEntry
from tests.audio_helpers_core import tone_wav
from tests.conftest import assert_ledger_consistent, wait_for
from tests.transcription.test_async_wait import Uvicorn
from transcription import services
from transcription.models import Transcription

AUDIO = tone_wav(1.0)


@pytest.fixture
def server(transactional_db, tmp_path):
    running = Uvicorn(tmp_path / "media")
    yield running
    running.stop()


class Recorder(httpx2.HTTPTransport):
    """The SDK's own transport, recording each request's retry count; `lose` drops that many answers
    after the server sent them (a proxy or network failure the SDK meets with a retry)."""

    def __init__(self, *, lose: int = 0):
        super().__init__()
        self.lose = lose
        self.retry_counts: list[str] = []

    def handle_request(self, request):
        self.retry_counts.append(request.headers.get("x-stainless-retry-count", ""))
        response = super().handle_request(request)
        if self.lose:
            self.lose -= 1
            response.read()
            response.close()
            raise httpx2.ReadTimeout("the answer was lost on the way", request=request)
        return response


def sdk(server, api_key, transport: Recorder, *, timeout: float = 30.0) -> OpenAI:
    """A client as users make it: default max_retries (2)."""
    return OpenAI(
        base_url=f"{server.url}/v1",
        api_key=api_key[1],
        timeout=timeout,
        http_client=openai.DefaultHttpxClient(transport=transport),
    )


def finish_like_a_worker(job_id, text: str = "hello world") -> None:
    """Run in a thread: claim and finalize as the worker does (then close the thread's connection)."""
    try:
        claim = services.transcription_claim(transcription_id=job_id)
        assert claim is not None
        assert services.transcription_finalize(
            claim=claim, text=text, segments=[{"start": 0.1, "end": 0.9, "text": text}], language="en", duration_s=1.0
        )
    finally:
        connection.close()


def debits(job_id) -> int:
    return LedgerEntry.objects.filter(transcription_id=job_id, kind="debit").count()


def holds(tenant) -> int:
    return LedgerEntry.objects.filter(tenant=tenant, kind="hold").count()


def test_a_timeout_is_answered_before_the_client_gives_up_and_is_not_retried(server, tenant, api_key, grant):
    # Given no worker and a client with a 3 s timeout and the SDK's default two retries
    grant(tenant, 10_000)
    transport = Recorder()
    client = sdk(server, api_key, transport, timeout=3.0)
    # When it asks for a transcription
    with pytest.raises(openai.InternalServerError) as caught:
        client.audio.transcriptions.create(model="whisper-1", file=("clip.wav", AUDIO, "audio/wav"))
    # Then it got one 504 that says not to retry, naming the job that continues
    error = caught.value
    assert error.status_code == 504 and error.response.headers["x-should-retry"] == "false"
    job = Transcription.objects.get(tenant=tenant)
    assert error.body["transcription_id"] == str(job.pk) and error.body["code"] == "timeout"
    assert transport.retry_counts == ["0"], "the SDK obeyed x-should-retry: false"
    # And the user's own repeat of the request attaches to the same job: no second job, no second hold
    with pytest.raises(openai.InternalServerError) as again:
        client.audio.transcriptions.create(model="whisper-1", file=("clip.wav", AUDIO, "audio/wav"))
    assert again.value.body["transcription_id"] == str(job.pk)
    assert again.value.response.headers["Idempotent-Replayed"] == "true"
    assert Transcription.objects.filter(tenant=tenant).count() == 1 and holds(tenant) == 1
    assert_ledger_consistent(tenant)


def test_a_retry_while_the_job_runs_attaches_to_it(server, tenant, api_key, grant):
    # Given a first answer (the 504 after the wait) lost on the way while the job is still queued
    grant(tenant, 10_000)
    transport = Recorder(lose=1)
    client = sdk(server, api_key, transport, timeout=4.0)

    def finish_during_the_retry():
        wait_for(lambda: len(transport.retry_counts) == 2, timeout=30)
        try:
            job_id = Transcription.objects.get(tenant=tenant).pk
        finally:
            connection.close()
        finish_like_a_worker(job_id)

    finisher = threading.Thread(target=finish_during_the_retry)
    finisher.start()
    # When the SDK retries and the worker finishes the job during the retry's wait
    result = client.audio.transcriptions.create(model="whisper-1", file=("clip.wav", AUDIO, "audio/wav"))
    finisher.join()
    # Then the retry got the one job's result; one job, one hold, one debit
    SdkTranscription.model_validate(result.model_dump(exclude_unset=True), strict=True)
    assert result.text == "hello world"
    assert transport.retry_counts == ["0", "1"]
    job = Transcription.objects.get(tenant=tenant)
    assert holds(tenant) == 1 and debits(job.pk) == 1
    assert_ledger_consistent(tenant)


def test_a_retry_after_the_job_finished_gets_its_result_without_a_second_charge(server, tenant, api_key, grant):
    grant(tenant, 10_000)
    transport = Recorder(lose=1)
    client = sdk(server, api_key, transport)

    # Given the job finishes while the first request waits, and its answer is lost on the way
    def finish_when_submitted():
        try:
            job_id = wait_for(lambda: Transcription.objects.filter(tenant=tenant).first(), timeout=20).pk
        finally:
            connection.close()
        finish_like_a_worker(job_id)

    done = threading.Thread(target=finish_when_submitted)
    done.start()
    # When the SDK retries
    result = client.audio.transcriptions.create(model="whisper-1", file=("clip.wav", AUDIO, "audio/wav"))
    done.join()
    # Then it gets that job's result: no second job, one debit
    assert result.text == "hello world" and transport.retry_counts == ["0", "1"]
    job = Transcription.objects.get(tenant=tenant)
    assert holds(tenant) == 1 and debits(job.pk) == 1
    # And a new request (not a retry) for the same audio is a new job, answered from the cache and billed
    transport.retry_counts.clear()
    fresh = client.audio.transcriptions.create(model="whisper-1", file=("clip.wav", AUDIO, "audio/wav"))
    assert fresh.text == "hello world" and transport.retry_counts == ["0"]
    jobs = Transcription.objects.filter(tenant=tenant)
    assert jobs.count() == 2 and jobs.filter(cache_hit=True).count() == 1
    assert sum(debits(j.pk) for j in jobs) == 2
    assert_ledger_consistent(tenant)


def test_identical_requests_racing_make_one_job(server, tenant, api_key, grant, require_postgres):
    grant(tenant, 10_000)
    transport = Recorder()
    client = sdk(server, api_key, transport, timeout=3.0)

    def ask(_):
        with pytest.raises(openai.InternalServerError) as caught:
            client.audio.transcriptions.create(model="whisper-1", file=("clip.wav", AUDIO, "audio/wav"))
        return caught.value.body["transcription_id"]

    with ThreadPoolExecutor(6) as pool:
        ids = set(pool.map(ask, range(6)))
    assert len(ids) == 1 and Transcription.objects.filter(tenant=tenant).count() == 1 and holds(tenant) == 1
    assert_ledger_consistent(tenant)


def test_other_options_or_another_tenant_do_not_attach(server, tenant, other_tenant, api_key, grant):
    from tenants.services import api_key_create

    grant(tenant, 10_000)
    grant(other_tenant, 10_000)
    client = sdk(server, api_key, Recorder(), timeout=2.0)
    other = sdk(server, api_key_create(tenant=other_tenant, name="o"), Recorder(), timeout=2.0)
    seen = set()
    for c, extra in ((client, {}), (client, {"language": "en"}), (other, {})):
        with pytest.raises(openai.InternalServerError) as caught:
            c.audio.transcriptions.create(model="whisper-1", file=("clip.wav", AUDIO, "audio/wav"), **extra)
        seen.add(caught.value.body["transcription_id"])
    assert len(seen) == 3
    assert_ledger_consistent(tenant)
    assert_ledger_consistent(other_tenant)
