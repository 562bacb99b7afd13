"""Nothing a signed Stripe payload contains makes the webhook answer 500: malformed events are refused (400,
nothing stored), malformed objects in every handler are anomalies (200, nothing written), and signatures dated in
the future are refused like stale ones."""

from __future__ import annotations

import json
import time

import pytest

from billing.models import BalanceAccount, LedgerEntry, StripeAnomaly, StripeEvent
from tests.billing.conftest import assert_ledger_invariant, deliver, make_event, sign

STARTER = 100_000
COMPLETED = "checkout.session.completed"


def balance(tenant) -> int:
    return BalanceAccount.objects.get(tenant=tenant).available


def reasons() -> list[str]:
    return list(StripeAnomaly.objects.order_by("id").values_list("reason", flat=True))


# --- malformed events: 400, nothing stored --------------------------------------------------------


def _event_text(mutate) -> str:
    event = make_event(COMPLETED, {"id": "cs_test_x", "payment_status": "paid", "amount_total": 500})
    result = mutate(event)
    return result if isinstance(result, str) else json.dumps(event if result is None else result)


MALFORMED_EVENTS = {
    "missing-id": lambda e: e.pop("id") and None,
    "id-not-a-string": lambda e: e.update(id=123),
    "id-too-long": lambda e: e.update(id="evt_" + "x" * 300),
    "missing-type": lambda e: e.pop("type") and None,
    "missing-data": lambda e: e.pop("data") and None,
    "data-null": lambda e: e.update(data=None),
    "missing-object": lambda e: e.update(data={}),
    "object-a-list": lambda e: e.update(data={"object": [1, 2]}),
    "event-a-list": lambda e: [e],
    "created-yesterday": lambda e: e.update(created="yesterday"),
    "created-10^30": lambda e: e.update(created=10**30),
    "created-float": lambda e: e.update(created=1.5),
    "api-version-a-number": lambda e: e.update(api_version=42),
    "nan": lambda e: json.dumps(e).replace('"amount_total": 500', '"amount_total": NaN'),
    "float-overflow": lambda e: json.dumps(e).replace('"amount_total": 500', '"amount_total": 1e400'),
    "huge-integer": lambda e: json.dumps(e).replace('"amount_total": 500', '"amount_total": ' + "9" * 5000),
    "nul-character": lambda e: e["data"]["object"].update(id="cs_\x00"),
    "nul-in-a-key": lambda e: e["data"]["object"].update({"meta\x00": 1}),
    "lone-surrogate": lambda e: json.dumps(e).replace("cs_test_x", "cs_\\ud800"),
    "deep-nesting": lambda e: "[" * 100_000 + "]" * 100_000,
    "nesting-deeper-than-storable": lambda e: e["data"]["object"].update(metadata=json.loads("[" * 900 + "]" * 900)),
    "not-json": lambda e: "yesterday",
}


@pytest.mark.parametrize("mutate", MALFORMED_EVENTS.values(), ids=MALFORMED_EVENTS.keys())
def test_malformed_signed_event_is_400_and_stored_nowhere(client, stripe_settings, db, mutate):
    response = deliver(client, _event_text(mutate))

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
    assert not StripeEvent.objects.exists()
    assert not LedgerEntry.objects.exists()


# --- malformed objects: 200, an anomaly, nothing written ------------------------------------------


def _paid(client, fake_stripe, checkout) -> dict:
    session = fake_stripe.pay(checkout()["id"])
    deliver(client, make_event(COMPLETED, session))
    return session


MALFORMED_OBJECTS = {
    "session-without-id": (COMPLETED, lambda fs, s: {"payment_status": "paid", "amount_total": 500}),
    "session-id-a-number": (COMPLETED, lambda fs, s: {**fs.sessions[s], "id": 12}),
    "expired-session-without-id": ("checkout.session.expired", lambda fs, s: {"status": "expired"}),
    "charge-without-id": ("charge.refunded", lambda fs, s: {**fs.refund(s), "id": None}),
    "refund-not-an-object": (
        "charge.refunded",
        lambda fs, s: {**fs.charge(s), "refunds": {"data": ["re_1"], "has_more": False}},
    ),
    "refund-amount-all": ("charge.refunded", lambda fs, s: _tamper_refund(fs.refund(s), amount="all")),
    "refund-amount-10^30": ("charge.refunded", lambda fs, s: _tamper_refund(fs.refund(s), amount=10**30)),
    "refund-created-yesterday": ("charge.refunded", lambda fs, s: _tamper_refund(fs.refund(s), created="yesterday")),
    "refund-without-id": ("charge.refunded", lambda fs, s: _tamper_refund(fs.refund(s), id=None)),
    "dispute-without-id": ("charge.dispute.created", lambda fs, s: {**fs.dispute(s), "id": ["dp"]}),
    "dispute-amount-all": ("charge.dispute.created", lambda fs, s: fs.dispute(s, amount="all")),
    "dispute-amount-negative": ("charge.dispute.created", lambda fs, s: fs.dispute(s, amount=-500)),
    "won-dispute-amount-10^30": ("charge.dispute.closed", lambda fs, s: fs.dispute(s, status="won", amount=10**30)),
}


def _tamper_refund(charge: dict, **fields) -> dict:
    charge["refunds"]["data"][0].update(fields)
    return charge


@pytest.mark.parametrize("event_type,build", MALFORMED_OBJECTS.values(), ids=MALFORMED_OBJECTS.keys())
def test_malformed_object_is_an_anomaly_not_a_500(client, fake_stripe, checkout, tenant, event_type, build):
    session = _paid(client, fake_stripe, checkout)
    entries_before = LedgerEntry.objects.count()

    response = deliver(client, make_event(event_type, build(fake_stripe, session["id"])))

    assert response.status_code == 200
    assert balance(tenant) == STARTER
    assert LedgerEntry.objects.count() == entries_before
    assert reasons() == ["malformed"]
    assert_ledger_invariant(tenant)


@pytest.mark.parametrize("event_type", ["charge.refunded", "charge.dispute.created"])
def test_refund_or_dispute_in_another_currency_reverses_nothing(client, fake_stripe, checkout, tenant, event_type):
    session = _paid(client, fake_stripe, checkout)
    obj = fake_stripe.refund(session["id"]) if event_type == "charge.refunded" else fake_stripe.dispute(session["id"])

    response = deliver(client, make_event(event_type, {**obj, "currency": "jpy"}))

    assert response.status_code == 200
    assert balance(tenant) == STARTER
    assert reasons() == ["currency_mismatch"]
    assert_ledger_invariant(tenant)


def test_refund_with_an_unusable_payment_intent_is_ignored(client, fake_stripe, checkout, tenant):
    session = _paid(client, fake_stripe, checkout)

    response = deliver(
        client, make_event("charge.refunded", {**fake_stripe.refund(session["id"]), "payment_intent": [1]})
    )

    assert response.status_code == 200
    assert balance(tenant) == STARTER
    assert_ledger_invariant(tenant)


def test_refund_of_a_foreign_session_found_at_stripe_credits_and_reverses_nothing(client, fake_stripe, tenant):
    session = fake_stripe.foreign_session(amount_total=500, metadata={"tenant_id": str(tenant.pk), "tokens": "100000"})

    response = deliver(client, make_event("charge.refunded", fake_stripe.refund(session["id"])))

    assert response.status_code == 200
    assert not LedgerEntry.objects.exists()
    assert_ledger_invariant(tenant)


# --- signatures dated in the future ------------------------------------------------------------------


def test_signature_dated_an_hour_ahead_is_refused(client, fake_stripe, checkout, tenant):
    payload = json.dumps(make_event(COMPLETED, fake_stripe.pay(checkout()["id"])))

    response = deliver(client, payload, signature=sign(payload, timestamp=int(time.time()) + 3600))

    assert response.status_code == 400
    assert "future" in response.json()["error"]["message"]
    assert not StripeEvent.objects.exists()
    assert balance(tenant) == 0
    assert_ledger_invariant(tenant)


def test_signature_a_minute_ahead_is_clock_skew_and_accepted(client, fake_stripe, checkout, tenant):
    payload = json.dumps(make_event(COMPLETED, fake_stripe.pay(checkout()["id"])))

    response = deliver(client, payload, signature=sign(payload, timestamp=int(time.time()) + 60))

    assert response.status_code == 200
    assert balance(tenant) == STARTER
