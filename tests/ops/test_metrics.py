"""/metrics: real jobs through a real ASR worker process, then the scraped values; access control; cheap hooks."""

from __future__ import annotations

import io

import numpy as np  # noqa: E402  (after the Django imports, like the other audio tests)
import pytest
from django.core.files.storage import default_storage
from prometheus_client.parser import text_string_to_metric_families

from tests.audio_samples import silence, speak_fixture, write_wav
from tests.conftest import WorkerProcess, wait_for
from transcription.models import Transcription


def scrape(client, **headers) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "pid"))
            samples[(sample.name, labels)] = samples.get((sample.name, labels), 0.0) + sample.value
    return samples


def delta(after, before, name, **labels) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def submit(api_client, audio: bytes, **fields):
    response = api_client.post("/api/v1/transcriptions", {"file": io.BytesIO(audio), **fields}, format="multipart")
    assert response.status_code == 202, response.content
    return response.json()["id"]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_scrape_after_real_jobs(client, api_client, tenant, grant, tmp_path, settings):
    """Three jobs (two succeed, one loses its audio) through a real worker: every family moves by what happened."""
    grant(tenant, 20_000)
    speech = np.concatenate([silence(0.5), speak_fixture("zh_park"), silence(0.5)])
    audio = write_wav(tmp_path / "a.wav", speech).read_bytes()
    before = scrape(client)
    ids = [submit(api_client, audio, hotwords=f"w{i}") for i in range(3)]  # distinct options: no cache hits
    lost = Transcription.objects.get(pk=ids[2])
    default_storage.delete(lost.audio.name)  # the worker will find it gone: audio_missing
    worker = WorkerProcess()
    try:
        wait_for(
            lambda: Transcription.objects.filter(pk__in=ids, status__in=["succeeded", "failed"]).count() == 3,
            timeout=180, message="three final jobs",
        )  # fmt: skip
        wait_for(lambda: client.get("/readyz").status_code == 200, timeout=30, message="the worker's heartbeat")
        after = scrape(client)
    finally:
        worker.stop()
    jobs = {str(t.pk): t for t in Transcription.objects.filter(pk__in=ids)}
    assert [jobs[i].status for i in ids] == ["succeeded", "succeeded", "failed"], worker.log()[-3000:]
    model = jobs[ids[0]].model

    assert delta(after, before, "tingxie_jobs_submitted_total", source="api") == 3
    assert delta(after, before, "tingxie_jobs_finished_total", status="succeeded") == 2
    assert delta(after, before, "tingxie_jobs_finished_total", status="failed") == 1
    assert delta(after, before, "tingxie_job_failures_total", code="audio_missing") == 1
    assert delta(after, before, "tingxie_job_queue_wait_seconds_count", model=model) == 3
    assert delta(after, before, "tingxie_job_processing_seconds_count", model=model) == 2
    assert delta(after, before, "tingxie_job_end_to_end_seconds_count", model=model) == 2
    e2e = delta(after, before, "tingxie_job_end_to_end_seconds_sum", model=model)
    processing = delta(after, before, "tingxie_job_processing_seconds_sum", model=model)
    assert 0 < processing <= e2e
    audio_s = sum(jobs[i].duration_s for i in ids[:2])
    assert delta(after, before, "tingxie_audio_seconds_total", model=model) == pytest.approx(audio_s, abs=0.01)
    billed = sum(jobs[i].billed_tokens for i in ids[:2])
    assert billed > 0 and delta(after, before, "tingxie_tokens_billed_total") == billed
    # The worker process loaded its model exactly once, however many jobs it ran.
    assert delta(after, before, "tingxie_model_loads_total", model=model) == 1
    assert delta(after, before, "tingxie_model_load_seconds_count", model=model) == 1
    assert after[("tingxie_queue_depth", (("cluster", "asr"),))] == 0
    assert after[("tingxie_jobs", (("status", "queued"),))] == 0
    assert after[("tingxie_queue_oldest_job_age_seconds", (("cluster", "asr"),))] == 0
    assert after[("tingxie_cluster_processes_alive", (("cluster", "asr"),))] >= 1
    assert ("tingxie_cluster_last_heartbeat_timestamp_seconds", (("cluster", "asr"),)) in after


@pytest.mark.django_db(transaction=True)
def test_queue_gauges_see_waiting_jobs(client, api_client, tenant, grant, tmp_path):
    """No worker: the queued job shows in the queue depth, the active jobs and the oldest job's age."""
    grant(tenant, 5_000)
    submit(api_client, write_wav(tmp_path / "t.wav", speak_fixture("en_welcome")).read_bytes())
    Transcription.objects.update(enqueued_at=Transcription.objects.get().created_at.replace(year=2020))
    samples = scrape(client)
    assert samples[("tingxie_queue_depth", (("cluster", "asr"),))] == 1
    assert samples[("tingxie_jobs", (("status", "queued"),))] == 1
    assert samples[("tingxie_queue_oldest_job_age_seconds", (("cluster", "asr"),))] > 86_400 * 365


def test_metrics_needs_token_or_allowed_address(client, settings, db):
    settings.METRICS_TOKEN = "s3cret-token"
    settings.METRICS_ALLOWED_IPS = ["10.0.0.0/8"]
    assert client.get("/metrics").status_code == 403  # 127.0.0.1 is not in the list
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    body = client.get("/metrics").json()
    assert body["error"]["code"] == "forbidden"
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 403


def test_webhook_and_stripe_counters(client, settings, db, tenant):
    """A webhook attempt that fails and a Stripe event we ignore each count once."""
    from tests.billing.conftest import WEBHOOK_SECRET, deliver, make_event
    from transcription.services import webhook_deliver

    before = scrape(client)
    job = Transcription.objects.create(
        tenant=tenant, status="succeeded", sha256="0" * 64, webhook_url="http://127.0.0.1:9/hook"
    )
    assert webhook_deliver(transcription_id=job.pk) is False  # nothing listens on port 9
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    assert deliver(client, make_event("customer.created", {"id": "cus_1"})).status_code == 200
    after = scrape(client)
    assert delta(after, before, "tingxie_webhook_deliveries_total", outcome="failed") == 1
    assert delta(after, before, "tingxie_stripe_events_total", status="ignored") == 1


def test_stream_sessions_gauge_hook(client, db):
    from portal.metrics import stream_session

    key = ("tingxie_stream_sessions_active", ())
    base = scrape(client).get(key, 0.0)
    with stream_session(), stream_session():
        assert scrape(client)[key] == base + 2
    assert scrape(client)[key] == base


def test_scrape_reads_no_whole_table(client, db, django_assert_max_num_queries):
    """A scrape costs a handful of small queries (broker lengths, active-job counts, heartbeats), whatever the size."""
    with django_assert_max_num_queries(8):
        assert client.get("/metrics").status_code == 200


def test_worker_machine_endpoint(settings, db):
    """`make worker` with WORKER_METRICS_PORT: the machine's own figures, behind the same token/allowlist."""
    import socket
    import urllib.error
    import urllib.request

    from portal.metrics import JOBS_SUBMITTED, serve_in_thread

    JOBS_SUBMITTED.labels(source="api").inc(0)  # the family exists in this process's files
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings.METRICS_TOKEN = "worker-token"
    settings.METRICS_ALLOWED_IPS = []
    serve_in_thread(host="127.0.0.1", port=port)
    url = f"http://127.0.0.1:{port}/metrics"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url, timeout=10)
    assert refused.value.code == 403
    request = urllib.request.Request(url, headers={"Authorization": "Bearer worker-token"})
    body = urllib.request.urlopen(request, timeout=10).read().decode()
    assert "tingxie_jobs_submitted_total" in body
