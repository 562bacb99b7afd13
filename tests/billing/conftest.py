"""Billing fixtures: a fake Stripe server, signed webhook deliveries, tenants with API keys, the ledger invariant."""

from __future__ import annotations

import hashlib
import hmac
import importlib
import itertools
import json
import time
from typing import Any

import pytest

from billing.models import BalanceAccount
from billing.selectors import ledger_sums
from tests.conftest import assert_books_balance, require_postgresql
from tests.fakes.stripe_server import FakeStripe

WEBHOOK_SECRET = "whsec_test_secret_for_tests"
_event_ids = itertools.count(1)


def postgres_required() -> None:
    """Fail (not skip) off PostgreSQL when TINGXIE_REQUIRE_POSTGRES=1; otherwise skip."""
    require_postgresql()


def assert_ledger_invariant(*tenants) -> None:
    for tenant in tenants:
        account = BalanceAccount.objects.get(tenant=tenant)
        assert (account.available, account.held) == ledger_sums(tenant=tenant)
    assert_books_balance(job_rows=False)


def sign(payload: str, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """Stripe-Signature: t=<unix>,v1=hex(HMAC-SHA256(secret, f"{t}.{payload}"))."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def make_event(event_type: str, obj: dict[str, Any], *, event_id: str | None = None, api_version: str | None = None):
    from django.conf import settings

    return {
        "id": event_id or f"evt_test_{next(_event_ids):06d}",
        "object": "event",
        "type": event_type,
        "api_version": api_version or settings.STRIPE_API_VERSION,
        "created": int(time.time()),
        "livemode": False,
        "data": {"object": obj},
    }


def deliver(client, event: dict[str, Any] | str, *, signature: str | None = None):
    payload = event if isinstance(event, str) else json.dumps(event)
    return client.post(
        "/webhooks/stripe/",
        data=payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=signature if signature is not None else sign(payload),
    )


@pytest.fixture
def stripe_settings(settings):
    settings.STRIPE_SECRET_KEY = "sk_test_fake"
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.SITE_URL = "http://testserver"
    return settings


@pytest.fixture
def fake_stripe(stripe_settings):
    fake = FakeStripe().start()
    stripe_settings.STRIPE_API_BASE = fake.url
    yield fake
    fake.stop()


@pytest.fixture
def token_packs(db):
    """The seeded packs; transactional tests flush the tables, so seed again (idempotent)."""
    from django.apps import apps

    seed = importlib.import_module("billing.migrations.0004_seed_token_packs")
    seed.seed(apps, None)
    from billing.models import TokenPack

    return {p.code: p for p in TokenPack.objects.all()}


@pytest.fixture
def checkout(fake_stripe, tenant, token_packs):
    """Start a checkout for `pack` (for the `tenant` fixture unless another tenant is given) and return the fake Stripe session."""
    from billing.topups import checkout_session_create

    default_tenant = tenant

    def start(pack: str = "starter", currency: str = "usd", tenant=None) -> dict[str, Any]:
        started = checkout_session_create(tenant=tenant or default_tenant, pack_code=pack, currency=currency)
        return fake_stripe.sessions[started.session_id]

    return start
