"""API v1 for transcriptions: contract, errors, isolation, idempotency, rate limit (no worker needed)."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from billing.models import BalanceAccount, LedgerEntry
from tests.audio_helpers_core import tone_wav
from tests.conftest import assert_ledger_consistent
from transcription import services
from transcription.models import Transcription

pytestmark = pytest.mark.django_db


def upload(data: bytes | None = None, name: str = "clip.wav"):
    return SimpleUploadedFile(name, data if data is not None else tone_wav(2.0), content_type="audio/wav")


def submit(client, **fields):
    payload = {"file": upload(), **fields}
    return client.post("/api/v1/transcriptions", payload, format="multipart")


def finish(job: Transcription, text: str = "你好 world", segments=None) -> Transcription:
    """Run a job through claim + finalize without the model (the worker path is tested end to end elsewhere)."""
    claim = services.transcription_claim(transcription_id=job.pk)
    assert claim is not None
    services.transcription_finalize(
        claim=claim,
        text=text,
        segments=segments if segments is not None else [{"start": 0.0, "end": 1.5, "text": text}],
        language="zh",
        duration_s=2.0,
    )
    job.refresh_from_db()
    return job


def test_submit_returns_202_with_job_and_places_hold(api_client, tenant, grant, django_capture_on_commit_callbacks):
    grant(tenant, 1000)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = submit(api_client, language="zh", hotwords="公园\n散步\n")
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "queued"
    assert body["progress"] == 0
    assert body["options"] == {"language": "zh", "itn": True, "vad": True, "hotwords": ["公园", "散步"]}
    assert body["usage"]["held_tokens"] == 16  # ceil(2.0 s x 8 tokens/s)
    assert len(callbacks) == 1  # the task is enqueued only after commit
    account = BalanceAccount.objects.get(tenant=tenant)
    assert (account.available, account.held) == (984, 16)
    assert LedgerEntry.objects.filter(kind="hold", transcription_id=body["id"]).count() == 1
    assert_ledger_consistent(tenant)


def test_insufficient_balance_is_402_and_stores_nothing(api_client, tenant, grant):
    grant(tenant, 5)
    response = submit(api_client)
    assert response.status_code == 402
    error = response.json()["error"]
    assert error["code"] == "insufficient_balance"
    assert error["needed_tokens"] == 16 and error["available_tokens"] == 5
    assert "Buy tokens" in error["message"]
    assert Transcription.objects.count() == 0
    assert LedgerEntry.objects.filter(kind="hold").count() == 0


@pytest.mark.parametrize(
    ("header", "expected"),
    [(None, 401), ("Bearer nope.nope", 401), ("Token abc", 401), ("Bearer ", 401)],
)
def test_bad_or_missing_key_is_401(db, header, expected):
    client = APIClient()
    if header is not None:
        client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/v1/transcriptions")
    assert response.status_code == expected
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_revoked_key_is_401(api_client, api_key):
    from tenants.services import api_key_revoke

    api_key_revoke(key=api_key[0])
    response = api_client.get("/api/v1/transcriptions")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_key_records_last_use(api_client, api_key):
    api_key[0].refresh_from_db()
    assert api_key[0].last_used_at is None
    api_client.get("/api/v1/transcriptions")
    api_key[0].refresh_from_db()
    assert api_key[0].last_used_at is not None


@pytest.mark.parametrize(
    ("fields", "code", "status"),
    [
        ({"file": None}, "invalid_request", 400),
        ({"language": "fr"}, "invalid_request", 400),
        ({"file": b""}, "unsupported_audio", 400),
        ({"file": b"this is not audio at all, just text" * 20}, "unsupported_audio", 400),
        ({"webhook_url": "ftp://example.com/x"}, "invalid_request", 400),
        ({"hotwords": "x" * 65}, "invalid_request", 400),
    ],
)
def test_bad_input_gets_documented_error_and_stores_nothing(api_client, tenant, grant, fields, code, status):
    grant(tenant, 1000)
    payload = {"file": upload()}
    for key, value in fields.items():
        if key == "file":
            if value is None:
                payload.pop("file")
            else:
                payload["file"] = upload(value, name="bad.mp3")
        else:
            payload[key] = value
    response = api_client.post("/api/v1/transcriptions", payload, format="multipart")
    assert response.status_code == status, response.content
    body = response.json()
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert Transcription.objects.count() == 0
    assert BalanceAccount.objects.get(tenant=tenant).held == 0


def test_file_too_large_is_413(api_client, tenant, grant, settings):
    grant(tenant, 1000)
    settings.MAX_UPLOAD_BYTES = 10_000
    response = submit(api_client)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "file_too_large"


def test_audio_too_long_is_413(api_client, tenant, grant, settings):
    grant(tenant, 1000)
    settings.MAX_AUDIO_SECONDS = 1.0
    response = submit(api_client)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "audio_too_long"
    assert Transcription.objects.count() == 0


def test_idempotency_same_request_same_job_different_request_409(api_client, tenant, grant):
    grant(tenant, 1000)
    audio = tone_wav(2.0)
    first = api_client.post(
        "/api/v1/transcriptions", {"file": upload(audio)}, format="multipart", HTTP_IDEMPOTENCY_KEY="k-1"
    )
    again = api_client.post(
        "/api/v1/transcriptions", {"file": upload(audio)}, format="multipart", HTTP_IDEMPOTENCY_KEY="k-1"
    )
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    assert again["Idempotent-Replayed"] == "true"
    different = api_client.post(
        "/api/v1/transcriptions",
        {"file": upload(audio), "language": "en"},
        format="multipart",
        HTTP_IDEMPOTENCY_KEY="k-1",
    )
    assert different.status_code == 409
    assert different.json()["error"]["code"] == "idempotency_conflict"
    assert Transcription.objects.count() == 1
    assert LedgerEntry.objects.filter(kind="hold").count() == 1
    assert_ledger_consistent(tenant)


def test_idempotency_keys_are_per_tenant(api_client, other_client, tenant, other_tenant, grant):
    grant(tenant, 1000)
    grant(other_tenant, 1000)
    a = api_client.post("/api/v1/transcriptions", {"file": upload()}, format="multipart", HTTP_IDEMPOTENCY_KEY="same")
    b = other_client.post("/api/v1/transcriptions", {"file": upload()}, format="multipart", HTTP_IDEMPOTENCY_KEY="same")
    assert a.status_code == b.status_code == 202
    assert a.json()["id"] != b.json()["id"]


def test_rate_limit_429_with_retry_after(api_client, tenant, grant, settings):
    grant(tenant, 10_000)
    from django.core.cache import cache
    from rest_framework.settings import api_settings

    cache.clear()
    rates = {**api_settings.DEFAULT_THROTTLE_RATES, "submit": "3/min"}
    from tenants.api import base

    original = base.SubmitThrottle.THROTTLE_RATES
    base.SubmitThrottle.THROTTLE_RATES = rates
    try:
        statuses = [submit(api_client).status_code for _ in range(4)]
    finally:
        base.SubmitThrottle.THROTTLE_RATES = original
        cache.clear()
    assert statuses[:3] == [202, 202, 202]
    assert statuses[3] == 429
    response = None
    base.SubmitThrottle.THROTTLE_RATES = {**rates, "submit": "1/min"}
    try:
        submit(api_client)
        response = submit(api_client)
    finally:
        base.SubmitThrottle.THROTTLE_RATES = original
        cache.clear()
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limited"
    assert int(response["Retry-After"]) > 0


def test_get_list_filter_and_paginate(api_client, tenant, grant):
    grant(tenant, 10_000)
    ids = [submit(api_client).json()["id"] for _ in range(3)]
    finish(Transcription.objects.get(pk=ids[0]))
    listing = api_client.get("/api/v1/transcriptions", {"page_size": 2}).json()
    assert listing["count"] == 3 and len(listing["results"]) == 2 and listing["next"]
    done = api_client.get("/api/v1/transcriptions", {"status": "succeeded"}).json()
    assert [j["id"] for j in done["results"]] == [ids[0]]
    bad = api_client.get("/api/v1/transcriptions", {"status": "nope"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_request"
    one = api_client.get(f"/api/v1/transcriptions/{ids[0]}").json()
    assert one["status"] == "succeeded" and one["text"] == "你好 world"
    assert one["usage"] == {"tokens": 3, "billed_tokens": 3, "held_tokens": 16, "rule": "v1"}
    assert_ledger_consistent(tenant)


def test_transcript_formats(api_client, tenant, grant):
    grant(tenant, 1000)
    job = Transcription.objects.get(pk=submit(api_client).json()["id"])
    not_ready = api_client.get(f"/api/v1/transcriptions/{job.pk}/transcript?format=srt")
    assert not_ready.status_code == 409 and not_ready.json()["error"]["code"] == "transcript_not_ready"
    finish(
        job,
        text="first. second",
        segments=[{"start": 0.0, "end": 1.25, "text": "first."}, {"start": 61.5, "end": 3723.004, "text": "second"}],
    )
    srt = api_client.get(f"/api/v1/transcriptions/{job.pk}/transcript?format=srt").content.decode()
    assert srt == "1\n00:00:00,000 --> 00:00:01,250\nfirst.\n\n2\n00:01:01,500 --> 01:02:03,004\nsecond\n"
    vtt = api_client.get(f"/api/v1/transcriptions/{job.pk}/transcript?format=vtt").content.decode()
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.250\nfirst.\n")
    txt = api_client.get(f"/api/v1/transcriptions/{job.pk}/transcript?format=txt").content.decode()
    assert txt == "first. second\n"
    js = api_client.get(f"/api/v1/transcriptions/{job.pk}/transcript?format=json").json()
    assert js["segments"][1]["start"] == 61.5
    bad = api_client.get(f"/api/v1/transcriptions/{job.pk}/transcript?format=doc")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_request"
    receipt = api_client.get(f"/api/v1/transcriptions/{job.pk}/receipt").json()
    assert receipt["units"] == ["first", "second"] and receipt["billed_tokens"] == 2


def test_cancel_releases_hold_and_is_not_charged(api_client, tenant, grant):
    grant(tenant, 1000)
    job_id = submit(api_client).json()["id"]
    response = api_client.post(f"/api/v1/transcriptions/{job_id}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "canceled"
    account = BalanceAccount.objects.get(tenant=tenant)
    assert (account.available, account.held) == (1000, 0)
    assert api_client.post(f"/api/v1/transcriptions/{job_id}/cancel").status_code == 200  # idempotent
    assert_ledger_consistent(tenant)


def test_cancel_finished_job_is_409(api_client, tenant, grant):
    grant(tenant, 1000)
    job = finish(Transcription.objects.get(pk=submit(api_client).json()["id"]))
    response = api_client.post(f"/api/v1/transcriptions/{job.pk}/cancel")
    assert response.status_code == 409 and response.json()["error"]["code"] == "transcription_finished"


def test_delete_removes_audio_and_text_keeps_ledger(api_client, tenant, grant, django_capture_on_commit_callbacks):
    grant(tenant, 1000)
    job = finish(Transcription.objects.get(pk=submit(api_client).json()["id"]))
    path = job.audio.path
    import os

    assert os.path.exists(path)
    with django_capture_on_commit_callbacks(execute=True):
        assert api_client.delete(f"/api/v1/transcriptions/{job.pk}").status_code == 204
    job.refresh_from_db()
    assert job.text == "" and job.audio.name == "" and job.deleted_at is not None
    assert not os.path.exists(path)
    assert api_client.get(f"/api/v1/transcriptions/{job.pk}").status_code == 404
    assert LedgerEntry.objects.filter(transcription=job, kind="debit").count() == 1
    assert_ledger_consistent(tenant)


def test_another_tenants_job_is_404_on_every_endpoint(api_client, other_client, tenant, other_tenant, grant):
    grant(tenant, 1000)
    job = finish(Transcription.objects.get(pk=submit(api_client).json()["id"]))
    base = f"/api/v1/transcriptions/{job.pk}"
    calls = [
        ("get", base),
        ("delete", base),
        ("post", f"{base}/cancel"),
        ("get", f"{base}/transcript?format=txt"),
        ("get", f"{base}/receipt"),
    ]
    for method, url in calls:
        response = getattr(other_client, method)(url)
        assert response.status_code == 404, (method, url)
        assert response.json()["error"]["code"] == "not_found"
    assert other_client.get("/api/v1/transcriptions").json()["count"] == 0
    assert api_client.get("/api/v1/transcriptions/not-a-uuid").status_code == 404
    job.refresh_from_db()
    assert job.deleted_at is None and job.status == "succeeded"


def test_cache_hit_same_tenant_only(
    api_client, other_client, tenant, other_tenant, grant, django_capture_on_commit_callbacks
):
    grant(tenant, 1000)
    grant(other_tenant, 1000)
    audio = tone_wav(2.0)
    first = Transcription.objects.get(pk=submit(api_client, file=upload(audio)).json()["id"])
    finish(first, text="cached words")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        again = api_client.post("/api/v1/transcriptions", {"file": upload(audio)}, format="multipart").json()
    assert again["status"] == "succeeded" and again["cache_hit"] is True and again["text"] == "cached words"
    assert again["usage"]["billed_tokens"] == 2
    assert callbacks == []  # no task queued: the model does not run
    other = other_client.post("/api/v1/transcriptions", {"file": upload(audio)}, format="multipart").json()
    assert other["status"] == "queued" and other["cache_hit"] is False
    different_options = api_client.post(
        "/api/v1/transcriptions", {"file": upload(audio), "itn": "false"}, format="multipart"
    ).json()
    assert different_options["cache_hit"] is False
    assert_ledger_consistent(tenant)
    assert_ledger_consistent(other_tenant)


def test_usage_per_day(api_client, tenant, grant):
    grant(tenant, 1000)
    finish(Transcription.objects.get(pk=submit(api_client).json()["id"]), text="one two three")
    body = api_client.get("/api/v1/usage").json()
    assert len(body["days"]) == 30
    assert body["totals"] == {"jobs": 1, "audio_seconds": 2.0, "tokens": 3}
    assert api_client.get("/api/v1/usage?from=2026-13-01").status_code == 400


def test_unknown_api_path_is_json_404(api_client):
    response = api_client.get("/api/v1/nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_schema_docs_health_metrics(client, db):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    spec = schema.json()
    assert spec["components"]["securitySchemes"]["ApiKeyAuth"]["scheme"] == "bearer"
    for path in ("/api/v1/transcriptions", "/api/v1/transcriptions/{transcription_id}/transcript", "/v1/audio/transcriptions",
                 "/api/v1/balance", "/api/v1/usage"):  # fmt: skip
        assert path in spec["paths"], path
    assert client.get("/api/docs/").status_code == 200
    assert client.get("/healthz").json()["status"] == "ok"
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and b"tingxie_jobs" in metrics.content


def test_unloadable_model_fails_job_uncharged_and_fast(api_client, tenant, grant, settings, tmp_path):
    """A hub id the worker cannot reach: the job fails with model_unavailable, nothing charged, and the
    next job fails at once instead of waiting on the hub again."""
    import time

    from transcription.engines import reset_engines

    grant(tenant, 1000)
    settings.ASR_ENGINES = {
        "default": {
            "BACKEND": "transcription.engines.funasr.FunASREngine",
            "OPTIONS": {"model": "no-such-org/no-such-model", "threads": 1, "hub": "no-such-hub"},
        }
    }
    reset_engines()
    try:
        ids = [
            submit(api_client, vad="false", hotwords=f"w{i}").json()["id"] for i in range(2)
        ]  # no VAD: the model must run
        assert services.transcription_run(transcription_id=ids[0]) == "failed"
        started = time.monotonic()
        assert services.transcription_run(transcription_id=ids[1]) == "failed"
        assert time.monotonic() - started < 2
    finally:
        reset_engines()
    for job_id in ids:
        job = Transcription.objects.get(pk=job_id)
        assert job.status == "failed" and job.error_code == "model_unavailable" and "not charged" in job.error_message
    account = BalanceAccount.objects.get(tenant=tenant)
    assert (account.available, account.held) == (1000, 0)
    assert_ledger_consistent(tenant)


def test_word_timestamps_option_and_words_in_segments(api_client, tenant, grant):
    grant(tenant, 1000)
    response = submit(api_client, word_timestamps="true")
    assert response.status_code == 202, response.content
    assert response.json()["options"]["word_timestamps"] is True
    words = [{"word": "你好", "start": 0.1, "end": 0.6}, {"word": "world", "start": 0.7, "end": 1.2}]
    finish(Transcription.objects.get(pk=response.json()["id"]), segments=[{"start": 0.0, "end": 1.5, "text": "你好 world",
                                                                          "words": words}])  # fmt: skip
    got = api_client.get(f"/api/v1/transcriptions/{response.json()['id']}").json()
    assert got["segments"][0]["words"] == words
    plain = submit(api_client, file=upload(tone_wav(3.0)))
    assert "word_timestamps" not in plain.json()["options"]  # not asked: the options (and cache keys) as before
