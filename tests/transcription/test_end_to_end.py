"""End to end over HTTP through a real django-q2 ASR worker process and the real funasr engine
(the committed trained fixture model), on the embedded ORM broker and on Redis."""

from __future__ import annotations

import io
import os
import signal
import time

import pytest
import requests

from billing.models import BalanceAccount, LedgerEntry
from tests.audio_samples import silence, speak_fixture, write_wav
from tests.conftest import WorkerProcess, assert_ledger_consistent, wait_for
from transcription import services
from transcription.models import Transcription

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

import numpy as np  # noqa: E402


def wav_bytes(samples: np.ndarray, tmp_path, name="clip.wav") -> bytes:
    path = write_wav(tmp_path / name, samples)
    return path.read_bytes()


def submit_http(base: str, key: str, audio: bytes, **fields) -> requests.Response:
    return requests.post(
        f"{base}/api/v1/transcriptions",
        headers={"Authorization": f"Bearer {key}"},
        files={"file": ("speech.wav", io.BytesIO(audio), "audio/wav")},
        data=fields,
        timeout=30,
    )


def poll_done(base: str, key: str, job_id: str, timeout: float = 120) -> dict:
    seen_progress = []

    def done():
        body = requests.get(
            f"{base}/api/v1/transcriptions/{job_id}", headers={"Authorization": f"Bearer {key}"}, timeout=10
        ).json()
        seen_progress.append(body["progress"])
        return body if body["status"] in ("succeeded", "failed", "canceled") else None

    body = wait_for(done, timeout=timeout, interval=0.1, message=f"job {job_id}")
    body["_progress_seen"] = seen_progress
    return body


def test_upload_to_transcript_with_real_words(live_server, asr_worker, tenant, api_key, grant, tmp_path):
    grant(tenant, 10_000)
    speech = np.concatenate([silence(1.5), speak_fixture("zh_park"), silence(1.0), speak_fixture("en_welcome")])
    response = submit_http(live_server.url, api_key[1], wav_bytes(speech, tmp_path))
    assert response.status_code == 202, response.text
    job = poll_done(live_server.url, api_key[1], response.json()["id"])
    assert job["status"] == "succeeded", (job, asr_worker.log()[-3000:])
    assert "公园散步" in job["text"]
    assert "transcription service" in job["text"]
    assert "<|" not in job["text"]
    assert abs(job["duration_s"] - len(speech) / 16000) < 0.05
    assert job["segments"] and job["segments"][0]["start"] >= 1.0  # times on the original timeline
    assert all(0 <= s["start"] < s["end"] <= job["duration_s"] + 0.01 for s in job["segments"])
    assert job["usage"]["billed_tokens"] == job["usage"]["tokens"] > 0
    assert job["usage"]["billed_tokens"] <= job["usage"]["held_tokens"]
    headers = {"Authorization": f"Bearer {api_key[1]}"}
    srt = requests.get(
        f"{live_server.url}/api/v1/transcriptions/{job['id']}/transcript?format=srt", headers=headers, timeout=10
    )
    blocks = srt.text.strip().split("\n\n")
    assert srt.status_code == 200 and blocks
    for i, block in enumerate(blocks, start=1):
        lines = block.split("\n")
        assert lines[0] == str(i)
        assert len(lines[1]) == 29 and " --> " in lines[1] and lines[1][8] == ","
        assert lines[2].strip()
    vtt = requests.get(
        f"{live_server.url}/api/v1/transcriptions/{job['id']}/transcript?format=vtt", headers=headers, timeout=10
    )
    assert vtt.text.startswith("WEBVTT\n\n") and "-->" in vtt.text
    account = BalanceAccount.objects.get(tenant=tenant)
    assert account.available == 10_000 - job["usage"]["billed_tokens"] and account.held == 0
    assert LedgerEntry.objects.filter(transcription_id=job["id"], kind="debit").count() == 1
    assert_ledger_consistent(tenant)
    row = Transcription.objects.get(pk=job["id"])
    assert row.decode_ms is not None and row.asr_ms is not None and row.attempt == 1


def test_openai_sdk_against_the_endpoint(live_server, asr_worker, tenant, api_key, grant, tmp_path):
    from openai import OpenAI

    grant(tenant, 10_000)
    path = write_wav(tmp_path / "welcome.wav", speak_fixture("en_welcome"))
    client = OpenAI(base_url=f"{live_server.url}/v1", api_key=api_key[1], max_retries=0)
    with open(path, "rb") as f:
        result = client.audio.transcriptions.create(model="whisper-1", file=f)
    assert "welcome to the transcription service" in result.text
    with open(path, "rb") as f:
        srt = client.audio.transcriptions.create(model="whisper-1", file=f, response_format="srt")
    assert srt.startswith("1\n00:00:")
    with open(path, "rb") as f:
        verbose = client.audio.transcriptions.create(model="whisper-1", file=f, response_format="verbose_json")
    assert verbose.segments and verbose.duration > 1 and verbose.language == "english"
    with open(path, "rb") as f:  # streamed: deltas from the real worker's segments, then the whole text
        events = list(client.audio.transcriptions.create(model="gpt-4o-transcribe", file=f, stream=True))
    assert [e.type for e in events[-1:]] == ["transcript.text.done"] and len(events) >= 2
    assert "".join(e.delta for e in events[:-1]) == events[-1].text == result.text
    bad = OpenAI(base_url=f"{live_server.url}/v1", api_key="wrong", max_retries=0)
    from openai import AuthenticationError

    with pytest.raises(AuthenticationError), open(path, "rb") as f:
        bad.audio.transcriptions.create(model="whisper-1", file=f)
    assert_ledger_consistent(tenant)


def test_redis_broker_end_to_end(live_server, tenant, api_key, grant, tmp_path, monkeypatch):
    """The same loop with django-q2's Redis broker (the Redis on 127.0.0.1)."""
    from django_q.conf import Conf

    redis_url = os.environ.get("TINGXIE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "REDIS", redis_url)
    import redis

    redis.from_url(redis_url).flushdb()
    worker = WorkerProcess(extra_env={"Q_BROKER": "redis", "REDIS_URL": redis_url})
    try:
        grant(tenant, 10_000)
        response = submit_http(live_server.url, api_key[1], wav_bytes(speak_fixture("zh_welcome"), tmp_path))
        assert response.status_code == 202
        job = poll_done(live_server.url, api_key[1], response.json()["id"])
        assert job["status"] == "succeeded", worker.log()[-3000:]
        assert "转写服务" in job["text"]
    finally:
        worker.stop()
    assert "redis" in worker.log().lower() or job["status"] == "succeeded"
    assert_ledger_consistent(tenant)


def _long_speech(seconds: float) -> np.ndarray:
    unit = np.concatenate([speak_fixture("zh_park"), silence(0.5)])
    reps = int(seconds * 16000 / len(unit)) + 1
    return np.tile(unit, reps)[: int(seconds * 16000)]


def test_worker_killed_mid_job_is_recovered_once(live_server, tenant, api_key, grant, tmp_path):
    """SIGKILL the worker between claim and finalize; the sweeper re-queues; the job ends once, charged once."""
    grant(tenant, 100_000)
    worker = WorkerProcess(extra_env={"JOB_LEASE_SECONDS": "3", "ASR_BATCH_SIZE_S": "5"})
    try:
        response = submit_http(live_server.url, api_key[1], wav_bytes(_long_speech(240), tmp_path))
        job_id = response.json()["id"]
        wait_for(lambda: Transcription.objects.filter(pk=job_id, status="running", progress__gt=0.05).exists(),
                 timeout=90, interval=0.05, message="job running with progress")  # fmt: skip
        for pid in worker.children():
            os.kill(pid, signal.SIGKILL)
        os.killpg(worker.proc.pid, signal.SIGKILL)
        worker.proc.wait(timeout=10)
    finally:
        worker.stop()
    job = Transcription.objects.get(pk=job_id)
    assert job.status == "running" and job.attempt == 1
    account = BalanceAccount.objects.get(tenant=tenant)
    assert account.held == job.held_tokens  # the hold is still there, not leaked, not charged
    time.sleep(3.5)  # lease expires
    assert services.transcription_sweep()["requeued"] == 1
    job.refresh_from_db()
    assert job.status == "queued"
    second = WorkerProcess()
    try:
        body = poll_done(live_server.url, api_key[1], job_id, timeout=180)
    finally:
        second.stop()
    assert body["status"] == "succeeded" and body["attempts"] == 2
    assert LedgerEntry.objects.filter(transcription_id=job_id, kind="debit").count() == 1
    assert LedgerEntry.objects.filter(transcription_id=job_id, kind="hold").count() == 1
    # A late re-delivery of the task (django-q2 may deliver twice) changes nothing.
    assert services.transcription_run(transcription_id=job_id) == "skipped"
    assert LedgerEntry.objects.filter(transcription_id=job_id, kind="debit").count() == 1
    assert_ledger_consistent(tenant)


def test_one_model_load_per_worker_process(live_server, asr_worker, tenant, api_key, grant, tmp_path):
    grant(tenant, 100_000)
    ids = []
    for i in range(4):
        audio = np.concatenate([silence(0.1 * (i + 1)), speak_fixture("zh_welcome")])  # distinct audio: no cache
        ids.append(submit_http(live_server.url, api_key[1], wav_bytes(audio, tmp_path, f"c{i}.wav")).json()["id"])
    for job_id in ids:
        assert poll_done(live_server.url, api_key[1], job_id)["status"] == "succeeded"
    log = asr_worker.log()
    assert log.count("Loaded ASR model") == 1, log[-3000:]
