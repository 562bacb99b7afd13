"""Completion webhooks: signed with the tenant secret, timestamped, retried with backoff."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django_q.models import Schedule

from billing.services import tokens_grant
from tests.audio_helpers_core import tone_wav
from transcription import services
from transcription.models import Transcription

pytestmark = pytest.mark.django_db


class Receiver:
    def __init__(self, statuses):
        self.statuses = list(statuses)
        self.requests: list[tuple[dict, bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append((dict(self.headers), body))
                status = outer.statuses.pop(0) if outer.statuses else 200
                location = None
                if isinstance(status, tuple):
                    status, location = status
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.end_headers()

            def do_GET(self):  # noqa: N802 - a followed redirect arrives here
                outer.requests.append((dict(self.headers), b""))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture
def receiver():
    made = []

    def make(*statuses):
        r = Receiver(statuses)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


def _finished_job(tenant, url, django_capture_on_commit_callbacks):
    tokens_grant(tenant=tenant, tokens=1000, memo="t")
    job = services.transcription_create(
        tenant=tenant, uploaded_file=SimpleUploadedFile("a.wav", tone_wav(1.0)), options={}, webhook_url=url
    )
    claim = services.transcription_claim(job_id=job.pk)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.transcription_finalize(claim=claim, text="hello there", segments=[], language="en", duration_s=1.0)
    assert len(callbacks) == 1  # the webhook is queued only once the result is committed
    return job


def test_webhook_is_signed_and_verifiable(tenant, receiver, django_capture_on_commit_callbacks):
    r = receiver(200)
    job = _finished_job(tenant, r.url, django_capture_on_commit_callbacks)
    assert services.webhook_deliver(job_id=job.pk) is True
    headers, body = r.requests[0]
    sig = headers["Tingxie-Signature"]
    ts = sig.split(",")[0].removeprefix("t=")
    expected = hmac.new(tenant.webhook_secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    assert sig == f"t={ts},v1={expected}"
    payload = json.loads(body)
    assert payload["type"] == "transcription.succeeded"
    assert payload["data"]["id"] == str(job.pk) and payload["data"]["text"] == "hello there"
    job.refresh_from_db()
    assert job.webhook_status == "delivered" and job.webhook_attempts == 1


def test_failed_delivery_is_retried_with_backoff(tenant, receiver, django_capture_on_commit_callbacks):
    r = receiver(500, 200)
    job = _finished_job(tenant, r.url, django_capture_on_commit_callbacks)
    assert services.webhook_deliver(job_id=job.pk) is False
    retry = Schedule.objects.get(name=f"webhook-{job.pk}-2")
    assert retry.func == "transcription.tasks.webhook_deliver_task"
    assert services.webhook_deliver(job_id=job.pk, attempt=2) is True
    job.refresh_from_db()
    assert job.webhook_status == "delivered" and job.webhook_attempts == 2


def test_gives_up_after_the_last_backoff(tenant, django_capture_on_commit_callbacks):
    job = _finished_job(tenant, "http://127.0.0.1:9/unreachable", django_capture_on_commit_callbacks)
    last = len(services.WEBHOOK_BACKOFF) + 1
    assert services.webhook_deliver(job_id=job.pk, attempt=last) is False
    assert not Schedule.objects.filter(name=f"webhook-{job.pk}-{last + 1}").exists()
    assert Transcription.objects.get(pk=job.pk).webhook_status == "failed"


def test_private_network_targets_are_refused(tenant, receiver, settings, django_capture_on_commit_callbacks):
    r = receiver(200)
    job = _finished_job(tenant, r.url, django_capture_on_commit_callbacks)
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    assert services.webhook_target_allowed(r.url) is False
    assert services.webhook_target_allowed("http://10.1.2.3/x") is False
    assert services.webhook_target_allowed("http://[::1]/x") is False
    assert services.webhook_target_allowed("http://8.8.8.8/hook") is True
    assert services.webhook_deliver(job_id=job.pk) is False
    assert r.requests == []  # nothing was sent
    assert Transcription.objects.get(pk=job.pk).webhook_status == "blocked"
    assert not Schedule.objects.filter(name__startswith=f"webhook-{job.pk}").exists()


def test_redirects_are_not_followed(tenant, receiver, django_capture_on_commit_callbacks):
    target = receiver(200)
    redirecting = receiver((302, target.url))
    job = _finished_job(tenant, redirecting.url, django_capture_on_commit_callbacks)
    assert services.webhook_deliver(job_id=job.pk) is False
    assert target.requests == [] and len(redirecting.requests) == 1
    assert Transcription.objects.get(pk=job.pk).webhook_status == "retrying"
