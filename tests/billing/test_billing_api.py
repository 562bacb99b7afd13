"""The billing endpoints under /api/v1/: balance, ledger, checkout, invoices, statements; tenant isolation."""

from __future__ import annotations

import pytest
from django.utils import timezone

from billing.models import LedgerEntry, TopUp
from billing.services import tokens_grant
from tests.billing.conftest import assert_ledger_invariant, deliver, make_event


@pytest.fixture
def granted(tenant, other_tenant):
    tokens_grant(tenant=tenant, tokens=5_000, memo="welcome")
    tokens_grant(tenant=other_tenant, tokens=777, memo="other welcome")


def test_balance(api_client, tenant, granted):
    response = api_client.get("/api/v1/balance")

    assert response.status_code == 200
    assert response.json() == {"available_tokens": 5_000, "held_tokens": 0}


def test_endpoints_need_an_api_key(client, db):
    for url in ["/api/v1/balance", "/api/v1/ledger", "/api/v1/billing/invoices", "/api/v1/billing/statements/2026-01"]:
        response = client.get(url)
        assert response.status_code == 401, url
        assert response.json()["error"]["code"] == "invalid_api_key"
    assert client.post("/api/v1/billing/checkout", {"pack": "starter"}).status_code == 401


def test_ledger_is_paginated_filtered_and_tenant_scoped(api_client, tenant, granted):
    for i in range(25):
        tokens_grant(tenant=tenant, tokens=1, memo=f"bonus {i}", kind="adjustment")

    page1 = api_client.get("/api/v1/ledger").json()
    page2 = api_client.get(page1["next"]).json()
    grants = api_client.get("/api/v1/ledger", {"kind": "grant"}).json()

    assert page1["count"] == 26
    assert len(page1["results"]) == 20 and len(page2["results"]) == 6
    assert page1["results"][0]["memo"] == "bonus 24"  # newest first
    assert [r["memo"] for r in grants["results"]] == ["welcome"]
    assert all("other" not in r["memo"] for r in page1["results"] + page2["results"])
    assert_ledger_invariant(tenant)


def test_ledger_rejects_unknown_kind(api_client, granted):
    response = api_client.get("/api/v1/ledger", {"kind": "bogus"})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"


def test_checkout_returns_session_and_records_pending_topup(api_client, fake_stripe, token_packs, tenant):
    response = api_client.post("/api/v1/billing/checkout", {"pack": "team"}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "url"}
    assert body["url"].startswith("https://")
    topup = TopUp.objects.get(stripe_session_id=body["id"])
    assert (topup.tenant, topup.status, topup.tokens, topup.currency, topup.amount) == (
        tenant, TopUp.Status.PENDING, 1_000_000, "usd", 4_000,
    )  # fmt: skip
    sent = next(r for r in fake_stripe.requests if r["method"] == "POST")
    params = sent["body"]
    assert params["mode"] == "payment"
    assert params["invoice_creation"]["enabled"] == "true"
    assert params["metadata"]["tenant_id"] == str(tenant.pk)
    assert params["metadata"]["pack"] == "team"
    assert params["client_reference_id"] == str(tenant.pk)
    assert "payment_method_types" not in params
    assert sent["headers"]["Stripe-Version"] == "2025-08-27.basil"
    assert sent["headers"]["Idempotency-Key"] == f"tingxie-topup-{topup.pk}"


def test_checkout_in_cny_uses_the_cny_price_and_lets_stripe_pick_methods(api_client, fake_stripe, token_packs):
    response = api_client.post("/api/v1/billing/checkout", {"pack": "starter", "currency": "CNY"}, format="json")

    assert response.status_code == 201
    params = next(r for r in fake_stripe.requests if r["method"] == "POST")["body"]
    assert params["line_items"][0]["price_data"] == {
        "currency": "cny",
        "unit_amount": "3500",
        "product_data": {"name": "Tingxie Starter: 100,000 tokens", "metadata": {"pack": "starter"}},
    }
    assert "payment_method_types" not in params


@pytest.mark.parametrize(
    "payload",
    [{"pack": "enterprise"}, {}, {"pack": "starter", "currency": "eur"}],
)
def test_checkout_invalid_input_is_400(api_client, fake_stripe, token_packs, payload):
    response = api_client.post("/api/v1/billing/checkout", payload, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
    assert not TopUp.objects.exists()
    assert not fake_stripe.requests


def test_checkout_when_stripe_is_down_is_502_and_topup_failed(api_client, fake_stripe, token_packs):
    fake_stripe.fail_next = 10

    response = api_client.post("/api/v1/billing/checkout", {"pack": "starter"}, format="json")

    assert response.status_code == 502
    assert response.json()["error"]["code"] == "payment_provider_error"
    assert TopUp.objects.get().status == TopUp.Status.FAILED


def test_packs_list(api_client, token_packs):
    packs = api_client.get("/api/v1/billing/packs").json()

    assert [(p["code"], p["tokens"]) for p in packs] == [
        ("starter", 100_000),
        ("team", 1_000_000),
        ("business", 10_000_000),
    ]
    assert {pr["currency"] for pr in packs[0]["prices"]} == {"usd", "cny"}


def test_invoices_lists_statements_and_stripe_invoices(client, api_client, fake_stripe, checkout, tenant):
    session = fake_stripe.pay(checkout()["id"])
    deliver(client, make_event("checkout.session.completed", session))

    body = api_client.get("/api/v1/billing/invoices").json()

    period = timezone.now().strftime("%Y-%m")
    assert body["statements"][0]["period"] == period
    assert body["statements"][0]["pdf_url"].endswith(f"/api/v1/billing/statements/{period}?format=pdf")
    assert body["invoices_complete"] is True
    [invoice] = body["invoices"]
    assert invoice["id"] == session["invoice"]
    assert invoice["hosted_invoice_url"].startswith("https://invoice.stripe.test/")
    assert invoice["invoice_pdf"].endswith("/pdf")
    assert_ledger_invariant(tenant)


def test_invoices_fall_back_to_stored_ids_when_stripe_is_down(client, api_client, fake_stripe, checkout):
    session = fake_stripe.pay(checkout()["id"])
    deliver(client, make_event("checkout.session.completed", session))
    fake_stripe.fail_next = 10

    body = api_client.get("/api/v1/billing/invoices").json()

    assert body["invoices_complete"] is False
    assert [i["id"] for i in body["invoices"]] == [session["invoice"]]


def test_other_tenant_sees_none_of_it(client, other_client, fake_stripe, checkout, tenant, other_tenant, granted):
    deliver(client, make_event("checkout.session.completed", fake_stripe.pay(checkout()["id"])))

    balance = other_client.get("/api/v1/balance").json()
    ledger = other_client.get("/api/v1/ledger").json()
    invoices = other_client.get("/api/v1/billing/invoices").json()
    statement = other_client.get(f"/api/v1/billing/statements/{timezone.now():%Y-%m}")

    assert balance == {"available_tokens": 777, "held_tokens": 0}
    assert [r["memo"] for r in ledger["results"]] == ["other welcome"]
    assert invoices["invoices"] == []
    assert statement.status_code == 200
    assert b"Acme" not in statement.content
    assert b"100,000" not in statement.content
    assert LedgerEntry.objects.filter(tenant=tenant, kind="topup").count() == 1
    assert_ledger_invariant(tenant, other_tenant)


def test_statement_html_and_pdf(api_client, tenant, granted):
    period = timezone.now().strftime("%Y-%m")

    html = api_client.get(f"/api/v1/billing/statements/{period}")
    pdf = api_client.get(f"/api/v1/billing/statements/{period}", {"format": "pdf"})

    assert html.status_code == 200
    assert html["Content-Type"].startswith("text/html")
    assert b"5,000" in html.content and b"welcome" in html.content
    assert pdf.status_code == 200
    assert pdf["Content-Type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")


@pytest.mark.parametrize("url", ["/api/v1/billing/statements/2026-13", "/api/v1/billing/statements/2999-01"])
def test_statement_bad_month_is_400(api_client, url):
    response = api_client.get(url)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"


def test_statement_bad_format_is_400(api_client):
    response = api_client.get("/api/v1/billing/statements/2026-01", {"format": "docx"})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
