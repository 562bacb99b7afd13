"""`manage.py stripe_reconcile --days N`: credits paid sessions whose webhook was lost, once."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from billing.models import BalanceAccount, LedgerEntry, TopUp
from tests.billing.conftest import assert_ledger_invariant, deliver, make_event


def reconcile(days: int = 3) -> str:
    out = StringIO()
    call_command("stripe_reconcile", days=days, stdout=out)
    return out.getvalue()


def test_lost_webhook_is_credited_and_second_run_changes_nothing(client, fake_stripe, checkout, tenant):
    delivered = fake_stripe.pay(checkout("starter")["id"])
    deliver(client, make_event("checkout.session.completed", delivered))
    lost = fake_stripe.pay(checkout("team")["id"])  # its webhook never arrives
    checkout("business")  # abandoned: open, never paid

    first = reconcile()

    assert f"credited {lost['id']}" in first
    assert delivered["id"] not in first
    assert BalanceAccount.objects.get(tenant=tenant).available == 1_100_000
    assert TopUp.objects.get(stripe_session_id=lost["id"]).status == TopUp.Status.PAID
    assert_ledger_invariant(tenant)

    entries_before = LedgerEntry.objects.count()
    second = reconcile()

    assert "credited 0" in second
    assert LedgerEntry.objects.count() == entries_before
    assert BalanceAccount.objects.get(tenant=tenant).available == 1_100_000
    assert_ledger_invariant(tenant)


def test_reconcile_pages_through_every_session(client, fake_stripe, checkout, tenant):
    sessions = [fake_stripe.pay(checkout()["id"]) for _ in range(105)]  # more than one page of 100

    out = reconcile()

    assert out.count("credited cs_") == 105
    assert LedgerEntry.objects.filter(kind="topup").count() == len(sessions)
    assert BalanceAccount.objects.get(tenant=tenant).available == 105 * 100_000
    assert [
        r["query"].get("starting_after") is not None
        for r in fake_stripe.requests
        if r["path"] == "/v1/checkout/sessions" and r["method"] == "GET"
    ] == [False, True]
    assert_ledger_invariant(tenant)


def test_reconcile_then_late_webhook_does_not_credit_twice(client, fake_stripe, checkout, tenant):
    session = fake_stripe.pay(checkout()["id"])
    reconcile()

    deliver(client, make_event("checkout.session.completed", session))

    assert LedgerEntry.objects.filter(kind="topup").count() == 1
    assert_ledger_invariant(tenant)


def test_reconcile_skips_foreign_and_unpaid_sessions(fake_stripe, checkout, tenant):
    unpaid = checkout()["id"]
    fake_stripe.pay(unpaid, asynchronous=True, settle=False)
    foreign = fake_stripe.session_create({"line_items": [{"price_data": {"currency": "usd", "unit_amount": "100"}}]})
    fake_stripe.pay(foreign["id"])

    out = reconcile()

    assert f"skipped {foreign['id']}" in out
    assert not LedgerEntry.objects.exists()
    assert_ledger_invariant(tenant)


def test_reconcile_reports_stripe_outage_as_command_error(fake_stripe, stripe_settings, db):
    fake_stripe.fail_next = 10

    with pytest.raises(CommandError):
        reconcile()
