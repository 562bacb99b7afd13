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
from transcription.outbound import BlockedTarget, resolve_public
from transcription.representation import transcription_representation

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


def delivery(job) -> dict | None:
    """The job's webhook delivery as the API shows it."""
    return transcription_representation(Transcription.objects.get(pk=job.pk))["webhook"]


def _finished_job(tenant, url, django_capture_on_commit_callbacks):
    tokens_grant(tenant=tenant, tokens=1000, memo="t")
    job = services.transcription_create(
        tenant=tenant, uploaded_file=SimpleUploadedFile("a.wav", tone_wav(1.0)), options={}, webhook_url=url
    )
    claim = services.transcription_claim(transcription_id=job.pk)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.transcription_finalize(claim=claim, text="hello there", segments=[], language="en", duration_s=1.0)
    assert len(callbacks) == 1  # the webhook is queued only once the result is committed
    return job


def test_webhook_is_signed_and_verifiable(tenant, receiver, django_capture_on_commit_callbacks):
    r = receiver(200)
    job = _finished_job(tenant, r.url, django_capture_on_commit_callbacks)
    assert services.webhook_deliver(transcription_id=job.pk) is True
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
    assert delivery(job) == {"status": "pending", "attempts": 0, "error": None}
    assert services.webhook_deliver(transcription_id=job.pk) is False
    assert delivery(job) == {"status": "retrying", "attempts": 1, "error": "The receiver answered HTTP 500."}
    retry = Schedule.objects.get(name=f"webhook-{job.pk}-2")
    assert retry.func == "transcription.tasks.webhook_deliver_task"
    assert services.webhook_deliver(transcription_id=job.pk, attempt=2) is True
    job.refresh_from_db()
    assert job.webhook_status == "delivered" and job.webhook_attempts == 2
    assert delivery(job) == {"status": "delivered", "attempts": 2, "error": None}


def test_gives_up_after_the_last_backoff(tenant, django_capture_on_commit_callbacks):
    job = _finished_job(tenant, "http://127.0.0.1:9/unreachable", django_capture_on_commit_callbacks)
    last = len(services.WEBHOOK_BACKOFF) + 1
    assert services.webhook_deliver(transcription_id=job.pk, attempt=last) is False
    assert not Schedule.objects.filter(name=f"webhook-{job.pk}-{last + 1}").exists()
    assert Transcription.objects.get(pk=job.pk).webhook_status == "failed"
    assert delivery(job)["status"] == "failed" and delivery(job)["error"].startswith("ConnectionRefusedError")


def test_private_network_targets_are_refused(tenant, receiver, settings, django_capture_on_commit_callbacks):
    r = receiver(200)
    job = _finished_job(tenant, r.url, django_capture_on_commit_callbacks)
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    for blocked in ("10.1.2.3", "::1", "127.0.0.1"):
        with pytest.raises(BlockedTarget):
            resolve_public(blocked, 80)
    assert resolve_public("8.8.8.8", 80) == ["8.8.8.8"]
    assert services.webhook_deliver(transcription_id=job.pk) is False
    assert r.requests == []  # nothing was sent
    assert Transcription.objects.get(pk=job.pk).webhook_status == "blocked"
    blocked_delivery = delivery(job)
    assert blocked_delivery["status"] == "blocked" and blocked_delivery["attempts"] == 1
    assert "resolves to a non-public address" in blocked_delivery["error"], blocked_delivery
    assert not Schedule.objects.filter(name__startswith=f"webhook-{job.pk}").exists()


def test_redirects_are_not_followed(tenant, receiver, django_capture_on_commit_callbacks):
    target = receiver(200)
    redirecting = receiver((302, target.url))
    job = _finished_job(tenant, redirecting.url, django_capture_on_commit_callbacks)
    assert services.webhook_deliver(transcription_id=job.pk) is False
    assert target.requests == [] and len(redirecting.requests) == 1
    assert Transcription.objects.get(pk=job.pk).webhook_status == "retrying"


@pytest.mark.parametrize(
    "address, public",
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.0.0.5", False),
        ("169.254.169.254", False),  # cloud metadata
        ("::1", False),
        ("fe80::1%eth0", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped
        ("64:ff9b::7f00:1", False),  # NAT64 of 127.0.0.1
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 of 169.254.169.254
        ("64:ff9b::808:808", True),  # NAT64 of 8.8.8.8
        ("64:ff9b:1::a00:1", False),  # local-use NAT64 prefix
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
        ("2002:c0a8:101::1", False),  # 6to4 of 192.168.1.1
        ("2002:808:808::1", True),  # 6to4 of 8.8.8.8
        ("::127.0.0.1", False),  # IPv4-compatible
        ("224.0.0.1", False),
    ],
)
def test_address_vetting_sees_through_ipv6_forms_of_private_addresses(address, public):
    from transcription.outbound import address_is_public

    assert address_is_public(address) is public


def test_delivery_connects_only_to_the_address_it_checked(
    tenant, receiver, settings, monkeypatch, django_capture_on_commit_callbacks
):
    """DNS rebinding: the name resolves to a public address when checked, then to 127.0.0.1. The delivery
    must connect to the checked address (here it fails: no internet), never to the rebound one."""
    import socket

    from transcription import outbound

    r = receiver(200)
    port = int(r.url.rsplit(":", 1)[1].split("/")[0])
    job = _finished_job(tenant, f"http://hooks.example.test:{port}/hook", django_capture_on_commit_callbacks)
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    answers = iter([[(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port))]])

    def rebinding(host, port_, *args, **kwargs):
        try:
            return next(answers)
        except StopIteration:  # every later lookup answers the attacker's internal target
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    connected = []

    def create_connection(address, *args, **kwargs):
        connected.append(address[0])
        raise OSError("no route (test)")

    monkeypatch.setattr(outbound.socket, "getaddrinfo", rebinding)
    monkeypatch.setattr(outbound.socket, "create_connection", create_connection)
    assert services.webhook_deliver(transcription_id=job.pk) is False
    assert connected == ["93.184.216.34"]
    assert r.requests == []
    assert Transcription.objects.get(pk=job.pk).webhook_status == "retrying"


def test_a_name_with_any_private_address_is_blocked(
    tenant, receiver, settings, monkeypatch, django_capture_on_commit_callbacks
):
    import socket

    from transcription import outbound

    job = _finished_job(tenant, "https://mixed.example.test/hook", django_capture_on_commit_callbacks)
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    monkeypatch.setattr(
        outbound.socket,
        "getaddrinfo",
        lambda *a, **k: [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 443)),
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("64:ff9b::a00:1", 443, 0, 0)),
        ],
    )
    assert services.webhook_deliver(transcription_id=job.pk) is False
    assert Transcription.objects.get(pk=job.pk).webhook_status == "blocked"
