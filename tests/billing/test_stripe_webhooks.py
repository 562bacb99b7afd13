"""POST /webhooks/stripe/: signatures, at-most-once events and credits, ordering, refunds, disputes."""

from __future__ import annotations

import json
import logging
import threading
import time

import pytest
from django.db import connection
from django.test import Client

from billing import topups, webhooks
from billing.models import BalanceAccount, LedgerEntry, StripeAnomaly, StripeEvent, TopUp
from billing.services import hold_place, hold_settle
from portal.errors import InsufficientBalance
from tests.billing.conftest import assert_ledger_invariant, deliver, make_event, postgres_required, sign
from transcription.models import Transcription

STARTER = 100_000


def balance(tenant) -> int:
    return BalanceAccount.objects.get(tenant=tenant).available


def topup_entries(session_id: str):
    return LedgerEntry.objects.filter(kind="topup", external_ref=session_id)


# --- happy path and at-most-once ------------------------------------------------------------


def test_completed_paid_session_credits_the_pack_once(client, fake_stripe, checkout, tenant):
    session = fake_stripe.pay(checkout("starter")["id"])

    response = deliver(client, make_event("checkout.session.completed", session))

    assert response.status_code == 200
    assert response.json()["status"] == "processed"
    assert balance(tenant) == STARTER
    topup = TopUp.objects.get(stripe_session_id=session["id"])
    assert topup.status == TopUp.Status.PAID
    assert topup.ledger_entry.external_ref == session["id"]
    assert topup.stripe_payment_intent_id == session["payment_intent"]
    assert topup.stripe_invoice_id == session["invoice"]
    assert StripeEvent.objects.get().status == StripeEvent.Status.PROCESSED
    assert_ledger_invariant(tenant)


def test_duplicate_event_is_stored_and_credited_once(client, fake_stripe, checkout, tenant):
    event = make_event("checkout.session.completed", fake_stripe.pay(checkout()["id"]))

    first, second = deliver(client, event), deliver(client, event)

    assert (first.status_code, second.status_code) == (200, 200)
    assert StripeEvent.objects.filter(event_id=event["id"]).count() == 1
    assert balance(tenant) == STARTER
    assert_ledger_invariant(tenant)


def test_two_events_for_the_same_session_credit_once(client, fake_stripe, checkout, tenant):
    session = fake_stripe.pay(checkout()["id"])

    deliver(client, make_event("checkout.session.completed", session))
    deliver(client, make_event("checkout.session.completed", session))

    assert StripeEvent.objects.count() == 2
    assert topup_entries(session["id"]).count() == 1
    assert balance(tenant) == STARTER
    assert_ledger_invariant(tenant)


def test_completed_and_async_succeeded_for_one_session_credit_once(client, fake_stripe, checkout, tenant):
    session = fake_stripe.pay(checkout("team")["id"])

    deliver(client, make_event("checkout.session.completed", session))
    deliver(client, make_event("checkout.session.async_payment_succeeded", session))

    assert topup_entries(session["id"]).count() == 1
    assert balance(tenant) == 1_000_000
    assert_ledger_invariant(tenant)


def test_unpaid_completed_then_async_succeeded_credits_on_success(client, fake_stripe, checkout, tenant):
    sid = checkout()["id"]
    unpaid = fake_stripe.pay(sid, asynchronous=True, settle=False)

    deliver(client, make_event("checkout.session.completed", unpaid))
    assert balance(tenant) == 0
    assert TopUp.objects.get(stripe_session_id=sid).status == TopUp.Status.PENDING

    paid = fake_stripe.pay(sid)
    deliver(client, make_event("checkout.session.async_payment_succeeded", paid))

    assert balance(tenant) == STARTER
    assert TopUp.objects.get(stripe_session_id=sid).status == TopUp.Status.PAID
    assert_ledger_invariant(tenant)


def test_out_of_order_async_succeeded_before_unpaid_completed(client, fake_stripe, checkout, tenant):
    sid = checkout()["id"]
    unpaid = fake_stripe.pay(sid, asynchronous=True, settle=False)
    paid = fake_stripe.pay(sid)

    deliver(client, make_event("checkout.session.async_payment_succeeded", paid))
    deliver(client, make_event("checkout.session.completed", unpaid))

    assert balance(tenant) == STARTER
    assert TopUp.objects.get(stripe_session_id=sid).status == TopUp.Status.PAID
    assert_ledger_invariant(tenant)


def test_async_payment_failed_marks_the_topup_failed(client, fake_stripe, checkout, tenant):
    sid = checkout()["id"]
    unpaid = fake_stripe.pay(sid, asynchronous=True, settle=False)

    deliver(client, make_event("checkout.session.completed", unpaid))
    deliver(client, make_event("checkout.session.async_payment_failed", unpaid))

    assert TopUp.objects.get(stripe_session_id=sid).status == TopUp.Status.FAILED
    assert balance(tenant) == 0
    assert_ledger_invariant(tenant)


def test_paid_session_unknown_locally_is_an_anomaly_not_a_credit(client, fake_stripe, checkout, tenant):
    session = fake_stripe.pay(checkout()["id"])
    TopUp.objects.filter(stripe_session_id=session["id"]).delete()  # e.g. restored from an old backup

    response = deliver(client, make_event("checkout.session.completed", session))

    # Our metadata is not proof of our checkout: finance decides (the anomaly names the tenant).
    assert response.status_code == 200
    assert balance(tenant) == 0
    anomaly = StripeAnomaly.objects.get()
    assert (anomaly.reason, anomaly.object_id, anomaly.tenant) == ("unknown_session", session["id"], tenant)
    assert_ledger_invariant(tenant)


def test_session_without_our_metadata_is_recorded_not_credited(client, fake_stripe, tenant):
    foreign = {
        "id": "cs_test_foreign",
        "payment_status": "paid",
        "metadata": {},
        "amount_total": 100,
        "currency": "usd",
    }

    response = deliver(client, make_event("checkout.session.completed", foreign))

    assert response.status_code == 200
    assert not LedgerEntry.objects.exists()
    assert StripeAnomaly.objects.get().reason == "unknown_session"


# --- signatures ------------------------------------------------------------------------


def _assert_refused(response):
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
    assert not StripeEvent.objects.exists()
    assert not LedgerEntry.objects.filter(kind="topup").exists()


def test_tampered_payload_is_refused_and_nothing_stored(client, fake_stripe, checkout):
    payload = json.dumps(make_event("checkout.session.completed", fake_stripe.pay(checkout()["id"])))
    signature = sign(payload)
    tampered = payload.replace('"tokens": "100000"', '"tokens": "999999999"')
    assert tampered != payload

    _assert_refused(deliver(client, tampered, signature=signature))


def test_wrong_secret_is_refused(client, fake_stripe, checkout):
    payload = json.dumps(make_event("checkout.session.completed", fake_stripe.pay(checkout()["id"])))

    _assert_refused(deliver(client, payload, signature=sign(payload, secret="whsec_someone_else")))


def test_stale_signature_is_refused(client, fake_stripe, checkout):
    payload = json.dumps(make_event("checkout.session.completed", fake_stripe.pay(checkout()["id"])))

    _assert_refused(deliver(client, payload, signature=sign(payload, timestamp=int(time.time()) - 3600)))


@pytest.mark.parametrize("header", ["", "garbage", "t=notanumber,v1=abc", "t=123"])
def test_malformed_signature_header_is_refused(db, client, fake_stripe, header):
    payload = json.dumps(make_event("checkout.session.completed", {"id": "cs_x", "payment_status": "paid"}))

    _assert_refused(deliver(client, payload, signature=header))


def test_get_is_not_allowed(db, client, stripe_settings):
    assert client.get("/webhooks/stripe/").status_code == 405


# --- unknown types, versions, failures ------------------------------------------------------


def test_unknown_event_type_is_stored_and_ignored(db, client, stripe_settings):
    response = deliver(client, make_event("customer.created", {"id": "cus_1"}))

    assert response.status_code == 200
    assert StripeEvent.objects.get().status == StripeEvent.Status.IGNORED


def test_api_version_mismatch_is_logged_not_refused(client, fake_stripe, checkout, tenant, caplog):
    session = fake_stripe.pay(checkout()["id"])

    with caplog.at_level(logging.WARNING, logger="billing.webhooks"):
        response = deliver(client, make_event("checkout.session.completed", session, api_version="2020-08-27"))

    assert response.status_code == 200
    assert "2020-08-27" in caplog.text
    assert balance(tenant) == STARTER
    assert_ledger_invariant(tenant)


def test_handler_error_rolls_back_and_answers_500_then_retry_succeeds(
    client, fake_stripe, checkout, tenant, monkeypatch
):
    session = fake_stripe.pay(checkout()["id"])
    event = make_event("checkout.session.completed", session)

    def credit_then_crash(obj):
        topups.topup_fulfil(session=obj)
        raise RuntimeError("boom after the credit")

    monkeypatch.setitem(webhooks.HANDLERS, "checkout.session.completed", credit_then_crash)
    response = deliver(client, event)

    assert response.status_code == 500
    assert response.json()["error"]["code"] == "processing_failed"
    assert balance(tenant) == 0
    stored = StripeEvent.objects.get(event_id=event["id"])
    assert stored.status == StripeEvent.Status.FAILED
    assert "boom" in stored.error
    assert_ledger_invariant(tenant)

    monkeypatch.undo()
    retry = deliver(client, event)

    assert retry.status_code == 200
    assert balance(tenant) == STARTER
    assert StripeEvent.objects.get(event_id=event["id"]).attempts == 2
    assert_ledger_invariant(tenant)


# --- refunds and disputes ------------------------------------------------------------------


def _paid(client, fake_stripe, checkout, pack="starter"):
    session = fake_stripe.pay(checkout(pack)["id"])
    deliver(client, make_event("checkout.session.completed", session))
    return session


def _spend(tenant, tokens_held: int, tokens_used: int) -> Transcription:
    job = Transcription.objects.create(tenant=tenant, sha256="0" * 64, held_tokens=tokens_held)
    hold_place(tenant_id=tenant.pk, reference=job.pk, tokens=tokens_held)
    hold_settle(tenant_id=job.tenant_id, reference=job.pk, held=job.held_tokens, tokens=tokens_used)
    return job


def test_refund_after_spending_goes_negative_and_next_job_gets_402(client, fake_stripe, checkout, tenant):
    session = _paid(client, fake_stripe, checkout)
    _spend(tenant, tokens_held=80_000, tokens_used=60_000)
    assert balance(tenant) == 40_000

    response = deliver(client, make_event("charge.refunded", fake_stripe.refund(session["id"])))

    assert response.status_code == 200
    assert balance(tenant) == -60_000
    refund = LedgerEntry.objects.get(kind="refund")
    assert refund.available_delta == -STARTER
    assert refund.external_ref.startswith("re_")
    assert_ledger_invariant(tenant)

    job = Transcription.objects.create(tenant=tenant, sha256="1" * 64, held_tokens=10)
    with pytest.raises(InsufficientBalance) as excinfo:
        hold_place(tenant_id=tenant.pk, reference=job.pk, tokens=10)
    assert excinfo.value.status_code == 402
    assert excinfo.value.extra["available_tokens"] == -60_000
    assert_ledger_invariant(tenant)


def test_partial_refunds_each_reverse_their_share_once(client, fake_stripe, checkout, tenant):
    session = _paid(client, fake_stripe, checkout)  # 500 cents for 100,000 tokens

    first = make_event("charge.refunded", fake_stripe.refund(session["id"], amount=100))
    deliver(client, first)
    deliver(client, first)
    assert balance(tenant) == 80_000

    deliver(client, make_event("charge.refunded", fake_stripe.refund(session["id"], amount=150)))

    assert balance(tenant) == 50_000
    assert LedgerEntry.objects.filter(kind="refund").count() == 2
    assert_ledger_invariant(tenant)


def test_refund_list_is_fetched_when_not_embedded(client, fake_stripe, checkout, tenant):
    session = _paid(client, fake_stripe, checkout)
    fake_stripe.refund(session["id"])

    deliver(client, make_event("charge.refunded", fake_stripe.charge(session["id"], embed_refunds=False)))

    assert balance(tenant) == 0
    assert any(r["path"] == "/v1/refunds" for r in fake_stripe.requests)
    assert_ledger_invariant(tenant)


def test_refund_arriving_before_the_session_event_credits_then_reverses(client, fake_stripe, checkout, tenant):
    session = fake_stripe.pay(checkout()["id"])
    charge = fake_stripe.refund(session["id"])

    deliver(client, make_event("charge.refunded", charge))
    deliver(client, make_event("checkout.session.completed", session))

    assert topup_entries(session["id"]).count() == 1
    assert LedgerEntry.objects.filter(kind="refund").count() == 1
    assert balance(tenant) == 0
    assert_ledger_invariant(tenant)


def test_refund_of_a_foreign_charge_is_ignored(client, fake_stripe, tenant):
    charge = {
        "id": "ch_other",
        "amount": 100,
        "payment_intent": "pi_unknown",
        "refunds": {"data": [], "has_more": False},
    }

    assert deliver(client, make_event("charge.refunded", charge)).status_code == 200
    assert not LedgerEntry.objects.exists()


def test_dispute_withdraws_tokens_and_a_won_dispute_gives_them_back(client, fake_stripe, checkout, tenant):
    session = _paid(client, fake_stripe, checkout)
    opened = fake_stripe.dispute(session["id"])

    deliver(client, make_event("charge.dispute.created", opened))
    assert balance(tenant) == 0

    deliver(client, make_event("charge.dispute.closed", {**opened, "status": "won"}))

    assert balance(tenant) == STARTER
    assert LedgerEntry.objects.get(kind="dispute_reversal").available_delta == STARTER
    assert_ledger_invariant(tenant)


def test_lost_dispute_keeps_the_tokens_withdrawn(client, fake_stripe, checkout, tenant):
    session = _paid(client, fake_stripe, checkout)
    opened = fake_stripe.dispute(session["id"])

    deliver(client, make_event("charge.dispute.created", opened))
    deliver(client, make_event("charge.dispute.closed", {**opened, "status": "lost"}))

    assert balance(tenant) == 0
    assert not LedgerEntry.objects.filter(kind="dispute_reversal").exists()
    assert_ledger_invariant(tenant)


def test_won_dispute_closed_before_created_nets_to_zero(client, fake_stripe, checkout, tenant):
    session = _paid(client, fake_stripe, checkout)
    opened = fake_stripe.dispute(session["id"])

    deliver(client, make_event("charge.dispute.closed", {**opened, "status": "won"}))
    deliver(client, make_event("charge.dispute.created", opened))

    assert balance(tenant) == STARTER
    assert LedgerEntry.objects.filter(kind="dispute").count() == 1
    assert LedgerEntry.objects.filter(kind="dispute_reversal").count() == 1
    assert_ledger_invariant(tenant)


def test_inquiry_withdraws_nothing(client, fake_stripe, checkout, tenant):
    session = _paid(client, fake_stripe, checkout)

    deliver(
        client,
        make_event("charge.dispute.created", fake_stripe.dispute(session["id"], status="warning_needs_response")),
    )

    assert balance(tenant) == STARTER
    assert_ledger_invariant(tenant)


# --- concurrency (PostgreSQL) -----------------------------------------------------------------


def _concurrently(payloads: list[str], workers_per_payload: int = 4) -> list[int]:
    barrier = threading.Barrier(len(payloads) * workers_per_payload)
    statuses: list[int] = []
    lock = threading.Lock()

    def post(payload: str) -> None:
        try:
            barrier.wait()
            response = deliver(Client(), payload)
            with lock:
                statuses.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=post, args=(p,)) for p in payloads for _ in range(workers_per_payload)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return statuses


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_deliveries_of_one_event_credit_once(fake_stripe, checkout, tenant):
    postgres_required()
    payload = json.dumps(make_event("checkout.session.completed", fake_stripe.pay(checkout()["id"])))

    statuses = _concurrently([payload], workers_per_payload=8)

    assert statuses == [200] * 8
    assert StripeEvent.objects.count() == 1
    assert LedgerEntry.objects.filter(kind="topup").count() == 1
    assert balance(tenant) == STARTER
    assert_ledger_invariant(tenant)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_completed_and_async_succeeded_credit_once(fake_stripe, checkout, tenant):
    postgres_required()
    session = fake_stripe.pay(checkout()["id"])
    payloads = [
        json.dumps(make_event("checkout.session.completed", session)),
        json.dumps(make_event("checkout.session.async_payment_succeeded", session)),
    ]

    statuses = _concurrently(payloads, workers_per_payload=4)

    assert statuses == [200] * 8
    assert StripeEvent.objects.count() == 2
    assert TopUp.objects.filter(stripe_session_id=session["id"]).count() == 1
    assert LedgerEntry.objects.filter(kind="topup").count() == 1
    assert balance(tenant) == STARTER
    assert_ledger_invariant(tenant)


def test_session_for_a_missing_tenant_is_ignored_not_retried_forever(client, stripe_settings, db):
    session = {"id": "cs_test_gone", "payment_status": "paid", "metadata": {"tenant_id": "999999", "tokens": "100"}}

    response = deliver(client, make_event("checkout.session.completed", session))

    assert response.status_code == 200
    assert not LedgerEntry.objects.exists()
    assert StripeAnomaly.objects.get().reason == "unknown_session"
