"""The developer surface: the webhook secret (dashboard page for owners and admins, and the API), with a
verification snippet that really verifies Tingxie's signature, and rate-limit headers on API responses."""

from __future__ import annotations

import json
import time

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from tenants.models import Tenant
from transcription.services import webhook_sign

pytestmark = pytest.mark.django_db


def test_owners_see_and_rotate_the_secret_and_the_snippet_verifies_a_real_signature(tenant, owner_client):
    page = owner_client.get(reverse("dashboard:developers"))
    assert page.status_code == 200 and page["Cache-Control"] == "no-store"
    html = page.content.decode()
    assert tenant.webhook_secret in html
    # The snippet on the page, run as shown, accepts Tingxie's signature and refuses a tampered body.
    snippet = html.split('data-testid="verify-snippet">', 1)[1].split("</code>", 1)[0]
    snippet = snippet.replace("&gt;", ">").replace("&lt;", "<").replace("&quot;", '"').replace("&#x27;", "'")
    namespace: dict = {}
    exec(compile(snippet, "snippet", "exec"), namespace)  # noqa: S102 - our own page's code
    body = json.dumps({"type": "transcription.succeeded"}).encode()
    header = webhook_sign(secret=tenant.webhook_secret, timestamp=int(time.time()), body=body)
    assert namespace["verify"](tenant.webhook_secret, header, body) is True
    assert namespace["verify"](tenant.webhook_secret, header, body + b" ") is False
    # Rotating gives a new secret, shown on the page
    old = tenant.webhook_secret
    response = owner_client.post(reverse("dashboard:webhook_secret_rotate"))
    assert response.status_code == 302
    tenant.refresh_from_db()
    assert tenant.webhook_secret != old and tenant.webhook_secret.startswith("whsec_")
    assert tenant.webhook_secret in owner_client.get(reverse("dashboard:developers")).content.decode()


@pytest.mark.parametrize("role", ["member", "billing"])
def test_others_cannot_see_or_rotate_the_secret(tenant, make_member, login, role):
    client = login(make_member(tenant, role))
    old = tenant.webhook_secret
    assert client.get(reverse("dashboard:developers")).status_code == 403
    assert client.post(reverse("dashboard:webhook_secret_rotate")).status_code == 403
    assert Tenant.objects.get(pk=tenant.pk).webhook_secret == old


def test_the_api_reads_and_rotates_the_own_tenant_s_secret_only(api_client, other_client, tenant, other_tenant):
    assert api_client.get("/api/v1/webhook-secret").json() == {"secret": tenant.webhook_secret}
    assert other_client.get("/api/v1/webhook-secret").json() == {"secret": other_tenant.webhook_secret}
    rotated = api_client.post("/api/v1/webhook-secret/rotate").json()["secret"]
    tenant.refresh_from_db()
    assert rotated == tenant.webhook_secret and api_client.get("/api/v1/webhook-secret").json()["secret"] == rotated
    other_tenant.refresh_from_db()
    assert other_client.get("/api/v1/webhook-secret").json()["secret"] == other_tenant.webhook_secret != rotated
    assert APIClient().get("/api/v1/webhook-secret").status_code == 401


def test_api_responses_carry_rate_limit_headers(api_client, monkeypatch):
    from django.core.cache import cache

    from tenants.api import base

    cache.clear()
    for throttle in (base.ReadThrottle, base.SubmitThrottle):
        monkeypatch.setattr(throttle, "THROTTLE_RATES", {"submit": "5/min", "read": "3/min"})
    seen = []
    for _ in range(4):
        response = api_client.get("/api/v1/balance")
        seen.append((response.status_code, response["RateLimit-Limit"], response["RateLimit-Remaining"]))
    assert seen == [(200, "3", "2"), (200, "3", "1"), (200, "3", "0"), (429, "3", "0")]
    assert 0 < int(response["RateLimit-Reset"]) <= 60 and response["x-ratelimit-remaining-requests"] == "0"
    assert response["RateLimit-Policy"] == "3;w=60"
    submit = api_client.post("/v1/audio/translations", {}, format="multipart")  # the submit rate
    assert (submit["RateLimit-Limit"], submit["RateLimit-Remaining"]) == ("5", "4")


def test_the_job_page_shows_the_webhook_delivery_and_why_it_was_blocked(tenant, owner_client, make_job):
    blocked = make_job(
        tenant,
        webhook_url="http://10.0.0.5/hook",
        webhook_status="blocked",
        webhook_attempts=1,
        webhook_error="10.0.0.5 resolves to a non-public address (10.0.0.5)",
    )
    page = owner_client.get(reverse("dashboard:transcription_detail", args=[blocked.pk])).content.decode()
    delivery = page.split('data-testid="webhook-delivery"', 1)[1].split("</div>", 1)[0]
    assert "blocked" in delivery and "1 attempt" in delivery and "non-public address" in delivery
    pending = make_job(tenant, webhook_url="https://example.com/hook")
    page = owner_client.get(reverse("dashboard:transcription_detail", args=[pending.pk])).content.decode()
    assert "pending" in page.split('data-testid="webhook-delivery"', 1)[1].split("</div>", 1)[0]
    without = make_job(tenant)
    page = owner_client.get(reverse("dashboard:transcription_detail", args=[without.pk])).content.decode()
    assert 'data-testid="webhook-delivery"' not in page
