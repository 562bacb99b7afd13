"""Stripe credits what was paid for a session our checkout recorded, never what an event says; the rest is a
`StripeAnomaly` for finance (200, nothing credited, one row per event however often Stripe retries it).
Malformed payloads are in test_stripe_malformed.py."""

from __future__ import annotations

import json
import logging
import threading
from io import StringIO

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.db import connection
from django.test import Client

from billing.models import BalanceAccount, LedgerEntry, StripeAnomaly, StripeEvent, TopUp
from tests.billing.conftest import assert_ledger_invariant, deliver, make_event, postgres_required

STARTER = 100_000
COMPLETED = "checkout.session.completed"


def balance(tenant) -> int:
    return BalanceAccount.objects.get(tenant=tenant).available


def reasons() -> list[str]:
    return list(StripeAnomaly.objects.order_by("id").values_list("reason", flat=True))


def assert_nothing_credited(*tenants) -> None:
    assert not LedgerEntry.objects.filter(kind="topup").exists()
    for tenant in tenants:
        assert balance(tenant) == 0
        assert_ledger_invariant(tenant)


# --- genuine sessions whose event disagrees with the price recorded at checkout ---------------


def test_amount_total_of_1_credits_nothing_and_is_recorded(client, fake_stripe, checkout, tenant, caplog):
    session = fake_stripe.pay(checkout("team")["id"])
    event = make_event(COMPLETED, {**session, "amount_total": 1})

    with caplog.at_level(logging.WARNING, logger="billing.stripe_events"):
        response = deliver(client, event)

    assert response.status_code == 200
    assert_nothing_credited(tenant)
    topup = TopUp.objects.get(stripe_session_id=session["id"])
    assert (topup.status, topup.ledger_entry) == (TopUp.Status.PENDING, None)
    anomaly = StripeAnomaly.objects.get()
    assert (anomaly.reason, anomaly.event_id, anomaly.event_type, anomaly.object_id) == (
        "amount_mismatch",
        event["id"],
        COMPLETED,
        session["id"],
    )
    assert (anomaly.tenant, anomaly.topup) == (tenant, topup)
    assert (anomaly.expected_amount, anomaly.expected_currency) == (4_000, "usd")
    assert (anomaly.received_amount, anomaly.received_currency) == (1, "usd")
    assert anomaly.payload == event
    assert "amount_mismatch" in caplog.text and session["id"] in caplog.text
    assert StripeEvent.objects.get().status == StripeEvent.Status.IGNORED


@pytest.mark.parametrize("pack_currency", ["usd", "cny"])
def test_paid_in_jpy_for_a_usd_or_cny_pack_credits_nothing(client, fake_stripe, checkout, tenant, pack_currency):
    session = fake_stripe.pay(checkout("starter", currency=pack_currency)["id"])

    response = deliver(client, make_event(COMPLETED, {**session, "currency": "jpy"}))

    assert response.status_code == 200
    assert_nothing_credited(tenant)
    anomaly = StripeAnomaly.objects.get()
    assert anomaly.reason == "currency_mismatch"
    assert (anomaly.expected_currency, anomaly.received_currency) == (pack_currency, "jpy")


@pytest.mark.parametrize("amount_total", [499, 501, "500", 500.0, None, 10**30])
def test_async_payment_succeeded_for_another_amount_credits_nothing(
    client, fake_stripe, checkout, tenant, amount_total
):
    session = fake_stripe.pay(checkout("starter")["id"])

    response = deliver(
        client, make_event("checkout.session.async_payment_succeeded", {**session, "amount_total": amount_total})
    )

    assert response.status_code == 200
    assert_nothing_credited(tenant)
    assert reasons() == ["amount_mismatch"]
    assert StripeAnomaly.objects.get().received_amount == (
        amount_total if type(amount_total) is int and amount_total < 2**63 else None
    )


def test_after_a_mismatch_the_genuine_event_still_credits_once(client, fake_stripe, checkout, tenant):
    session = fake_stripe.pay(checkout()["id"])

    deliver(client, make_event(COMPLETED, {**session, "amount_total": 1}))
    deliver(client, make_event(COMPLETED, session))
    deliver(client, make_event(COMPLETED, session))

    assert balance(tenant) == STARTER
    assert LedgerEntry.objects.filter(kind="topup").count() == 1
    assert reasons() == ["amount_mismatch"]
    assert_ledger_invariant(tenant)


@pytest.mark.parametrize(
    "metadata",
    [{"tokens": "-500"}, {"tokens": str(10**30)}, {"tokens": 10**30}, {"tokens": "abc", "pack": "business"}, [], "x"],
    ids=["tokens=-500", "tokens=10^30-string", "tokens=10^30-number", "tokens=abc", "list", "string"],
)
def test_metadata_tokens_never_decide_a_genuine_credit(client, fake_stripe, checkout, tenant, metadata):
    session = fake_stripe.pay(checkout("starter")["id"])
    if isinstance(metadata, dict):
        metadata = {**session["metadata"], **metadata}

    response = deliver(client, make_event(COMPLETED, {**session, "metadata": metadata}))

    assert response.status_code == 200
    assert balance(tenant) == STARTER
    assert LedgerEntry.objects.get(kind="topup").available_delta == STARTER
    assert not StripeAnomaly.objects.exists()
    assert_ledger_invariant(tenant)


def test_topup_id_abc_on_a_genuine_session_is_a_mismatch(client, fake_stripe, checkout, tenant):
    session = fake_stripe.pay(checkout()["id"])
    metadata = {**session["metadata"], "topup_id": "abc"}

    response = deliver(client, make_event(COMPLETED, {**session, "metadata": metadata}))

    assert response.status_code == 200
    assert_nothing_credited(tenant)
    assert reasons() == ["topup_mismatch"]


def test_metadata_naming_another_topup_is_a_mismatch(client, fake_stripe, checkout, tenant):
    cheap = fake_stripe.pay(checkout("starter")["id"])
    dear = TopUp.objects.get(stripe_session_id=checkout("business")["id"])
    metadata = {**cheap["metadata"], "topup_id": str(dear.pk), "tokens": str(dear.tokens)}

    deliver(client, make_event(COMPLETED, {**cheap, "metadata": metadata}))

    assert_nothing_credited(tenant)
    assert reasons() == ["topup_mismatch"]


@pytest.mark.parametrize("field", ["metadata", "client_reference_id"])
def test_session_naming_another_tenant_is_a_mismatch(client, fake_stripe, checkout, tenant, other_tenant, field):
    session = fake_stripe.pay(checkout()["id"])
    if field == "metadata":
        session["metadata"] = {**session["metadata"], "tenant_id": str(other_tenant.pk)}
    else:
        session["client_reference_id"] = str(other_tenant.pk)

    response = deliver(client, make_event(COMPLETED, session))

    assert response.status_code == 200
    assert_nothing_credited(tenant, other_tenant)
    anomaly = StripeAnomaly.objects.get()
    assert (anomaly.reason, anomaly.tenant) == ("tenant_mismatch", tenant)


# --- sessions our checkout never created ----------------------------------------------------------


def test_foreign_session_naming_a_tenant_and_tokens_credits_nothing(client, fake_stripe, tenant):
    metadata = {"tenant_id": str(tenant.pk), "tokens": "999999999", "pack": "business"}
    session = fake_stripe.foreign_session(amount_total=1, metadata=metadata, client_reference_id=str(tenant.pk))

    response = deliver(client, make_event(COMPLETED, session))

    assert response.status_code == 200
    assert_nothing_credited(tenant)
    assert not TopUp.objects.exists()
    anomaly = StripeAnomaly.objects.get()
    assert (anomaly.reason, anomaly.tenant, anomaly.topup, anomaly.object_id) == (
        "unknown_session",
        tenant,
        None,
        session["id"],
    )
    assert (anomaly.received_amount, anomaly.received_currency) == (1, "usd")


@pytest.mark.parametrize(
    "bogus",
    [{"tokens": "-500"}, {"tokens": str(10**30)}, {"tokens": 10**30}, {"topup_id": "abc"}, {"tenant_id": "abc"}],
    ids=["tokens=-500", "tokens=10^30-string", "tokens=10^30-number", "topup_id=abc", "tenant_id=abc"],
)
def test_foreign_session_with_bogus_metadata_is_an_anomaly(client, fake_stripe, tenant, bogus):
    metadata = {"tenant_id": str(tenant.pk), "tokens": "100000", **bogus}
    session = fake_stripe.foreign_session(amount_total=500, metadata=metadata)

    response = deliver(client, make_event(COMPLETED, session))

    assert response.status_code == 200
    assert_nothing_credited(tenant)
    assert not LedgerEntry.objects.filter(available_delta__lt=0).exists()
    assert reasons() == ["unknown_session"]


def test_our_session_whose_id_was_never_saved_is_credited_at_the_recorded_price(client, fake_stripe, checkout, tenant):
    session = fake_stripe.pay(checkout()["id"])
    TopUp.objects.filter(stripe_session_id=session["id"]).update(stripe_session_id=None)  # died before saving it

    deliver(client, make_event(COMPLETED, session))

    assert balance(tenant) == STARTER
    assert TopUp.objects.get().stripe_session_id == session["id"]
    assert_ledger_invariant(tenant)


def test_orphan_topup_is_not_claimed_by_a_session_with_another_price(client, fake_stripe, checkout, tenant):
    session = fake_stripe.pay(checkout()["id"])
    TopUp.objects.filter(stripe_session_id=session["id"]).update(stripe_session_id=None)

    deliver(client, make_event(COMPLETED, {**session, "id": "cs_test_claim", "amount_total": 1}))

    assert_nothing_credited(tenant)
    assert TopUp.objects.get().stripe_session_id is None  # the claim was rolled back with the rest
    assert reasons() == ["amount_mismatch"]


# --- at most one anomaly per event ---------------------------------------------------------------------


def test_replayed_anomalous_event_is_recorded_once(client, fake_stripe, checkout, tenant):
    event = make_event(COMPLETED, {**fake_stripe.pay(checkout()["id"]), "amount_total": 1})

    statuses = [deliver(client, event).status_code for _ in range(3)]

    assert statuses == [200, 200, 200]
    assert reasons() == ["amount_mismatch"]
    assert StripeEvent.objects.get().attempts == 1
    assert_nothing_credited(tenant)


def test_anomaly_is_recorded_once_even_when_its_event_runs_again(client, fake_stripe, checkout, tenant):
    event = make_event(COMPLETED, {**fake_stripe.pay(checkout()["id"]), "amount_total": 1})
    deliver(client, event)
    StripeEvent.objects.update(status=StripeEvent.Status.FAILED)  # e.g. a crash after the handler ran

    assert deliver(client, event).status_code == 200
    assert reasons() == ["amount_mismatch"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_deliveries_of_an_anomalous_event_record_it_once(fake_stripe, checkout, tenant):
    postgres_required()
    payload = json.dumps(make_event(COMPLETED, {**fake_stripe.pay(checkout()["id"]), "amount_total": 1}))
    barrier = threading.Barrier(8)
    statuses: list[int] = []

    def post() -> None:
        try:
            barrier.wait()
            statuses.append(deliver(Client(), payload).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    assert statuses == [200] * 8
    assert reasons() == ["amount_mismatch"]
    assert_nothing_credited(tenant)


# --- reconciliation ---------------------------------------------------------------------------------------


def _reconcile() -> str:
    out = StringIO()
    call_command("stripe_reconcile", days=3, stdout=out)
    return out.getvalue()


def test_reconcile_records_a_foreign_session_with_our_metadata_once(fake_stripe, tenant):
    metadata = {"tenant_id": str(tenant.pk), "tokens": "999999999"}
    session = fake_stripe.foreign_session(amount_total=1, metadata=metadata)

    first, second = _reconcile(), _reconcile()

    assert f"skipped {session['id']}" in first and f"skipped {session['id']}" in second
    anomaly = StripeAnomaly.objects.get()
    assert (anomaly.reason, anomaly.event_id, anomaly.object_id) == ("unknown_session", "", session["id"])
    assert_nothing_credited(tenant)


def test_reconcile_does_not_credit_a_session_that_charged_another_amount(fake_stripe, checkout, tenant):
    sid = checkout()["id"]
    fake_stripe.sessions[sid]["amount_total"] = 1
    fake_stripe.pay(sid)

    assert "credited 0" in _reconcile()
    assert reasons() == ["amount_mismatch"]
    assert_nothing_credited(tenant)


# --- the finance desk ----------------------------------------------------------------------------------------


@pytest.fixture
def finance_client(client, db):
    user = User.objects.create_user("fin", "fin@example.com", "pw", is_staff=True)
    user.groups.add(Group.objects.get(name="Finance"))
    client.force_login(user)
    return client


def test_finance_group_may_view_anomalies_and_nothing_more(db):
    codenames = set(Group.objects.get(name="Finance").permissions.values_list("codename", flat=True))

    assert "view_stripeanomaly" in codenames
    assert not {"add_stripeanomaly", "change_stripeanomaly", "delete_stripeanomaly"} & codenames


def test_finance_sees_the_anomaly_list_filters_and_searches_it(finance_client, fake_stripe, checkout, tenant):
    session = fake_stripe.pay(checkout()["id"])
    event = make_event(COMPLETED, {**session, "amount_total": 1})
    deliver(Client(), event)
    anomaly = StripeAnomaly.objects.get()

    listing = finance_client.get("/admin/billing/stripeanomaly/")
    by_reason = finance_client.get("/admin/billing/stripeanomaly/", {"reason__exact": "amount_mismatch"})
    other_reason = finance_client.get("/admin/billing/stripeanomaly/", {"reason__exact": "unknown_session"})
    by_id = finance_client.get("/admin/billing/stripeanomaly/", {"q": session["id"]})
    detail = finance_client.get(f"/admin/billing/stripeanomaly/{anomaly.pk}/change/")

    assert listing.status_code == 200
    page = listing.content.decode()
    assert event["id"] in page and session["id"] in page and "0.01 USD" in page and "5.00 USD" in page
    assert event["id"] in by_reason.content.decode()
    assert event["id"] not in other_reason.content.decode()
    assert event["id"] in by_id.content.decode()
    assert detail.status_code == 200 and b'name="_save"' not in detail.content
    assert finance_client.get("/admin/billing/stripeanomaly/add/").status_code == 403
    assert finance_client.post(f"/admin/billing/stripeanomaly/{anomaly.pk}/delete/").status_code == 403
