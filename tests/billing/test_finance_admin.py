"""The finance desk in Django admin: memo-gated balance actions with the staff actor, a read-only ledger, reconciliation."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User

from billing.models import BalanceAccount, LedgerEntry, TokenPackPrice
from tests.billing.conftest import assert_ledger_invariant, deliver, make_event

CHANGELIST = "/admin/billing/balanceaccount/"


@pytest.fixture
def finance_user(db):
    user = User.objects.create_user("fin", "fin@example.com", "pw", is_staff=True)
    user.groups.add(Group.objects.get(name="Finance"))
    return user


@pytest.fixture
def finance_client(client, finance_user):
    client.force_login(finance_user)
    return client


def run_action(client, action: str, accounts, **form):
    data = {"action": action, "_selected_action": [a.pk for a in accounts], **form}
    return client.post(CHANGELIST, data)


def test_finance_group_has_the_desk_permissions_and_no_ledger_writes(db):
    codenames = set(Group.objects.get(name="Finance").permissions.values_list("codename", flat=True))

    assert {"view_balanceaccount", "adjust_balance", "view_ledgerentry", "change_tokenpack", "view_topup",
            "reconcile_topups", "view_stripeevent", "view_tenant"} <= codenames  # fmt: skip
    assert not {"add_ledgerentry", "change_ledgerentry", "delete_ledgerentry", "change_balanceaccount"} & codenames


def test_balance_list_shows_tenants(finance_client, tenant):
    response = finance_client.get(CHANGELIST)

    assert response.status_code == 200
    assert tenant.slug in response.content.decode()
    assert "grant_tokens" in response.content.decode()


def test_grant_asks_for_a_memo_first(finance_client, tenant):
    account = BalanceAccount.objects.get(tenant=tenant)

    page = run_action(finance_client, "grant_tokens", [account])
    no_memo = run_action(finance_client, "grant_tokens", [account], tokens=100, memo="  ", apply="1")

    assert page.status_code == 200 and b'name="memo"' in page.content
    assert no_memo.status_code == 200 and b"required" in no_memo.content
    assert not LedgerEntry.objects.exists()


def test_grant_records_the_staff_user_and_memo(finance_client, finance_user, tenant):
    account = BalanceAccount.objects.get(tenant=tenant)

    response = run_action(finance_client, "grant_tokens", [account], tokens=5_000, memo="pilot customer", apply="1")

    assert response.status_code == 302
    entry = LedgerEntry.objects.get()
    assert (entry.kind, entry.available_delta, entry.memo, entry.actor) == (
        "grant",
        5_000,
        "pilot customer",
        finance_user,
    )
    assert_ledger_invariant(tenant)


def test_grant_refuses_negative_tokens(finance_client, tenant):
    account = BalanceAccount.objects.get(tenant=tenant)

    response = run_action(finance_client, "grant_tokens", [account], tokens=-5, memo="oops", apply="1")

    assert response.status_code == 200
    assert not LedgerEntry.objects.exists()


def test_adjust_can_remove_tokens_and_refund_as_tokens_credits(finance_client, finance_user, tenant, other_tenant):
    accounts = list(BalanceAccount.objects.filter(tenant__in=[tenant, other_tenant]))

    run_action(finance_client, "adjust_tokens", accounts[:1], tokens=-300, memo="double-billed job", apply="1")
    run_action(finance_client, "refund_as_tokens", accounts, tokens=1_000, memo="outage 2026-11-20", apply="1")

    adjust = LedgerEntry.objects.get(available_delta=-300)
    assert (adjust.kind, adjust.actor) == ("adjustment", finance_user)
    refunds = LedgerEntry.objects.filter(memo="Refund as tokens: outage 2026-11-20")
    assert refunds.count() == 2 and {e.kind for e in refunds} == {"adjustment"}
    assert_ledger_invariant(tenant, other_tenant)


def test_staff_without_finance_permission_cannot_adjust(client, tenant):
    user = User.objects.create_user("ops", "ops@example.com", "pw", is_staff=True)
    from django.contrib.auth.models import Permission

    user.user_permissions.add(Permission.objects.get(codename="view_balanceaccount"))
    client.force_login(user)
    account = BalanceAccount.objects.get(tenant=tenant)

    run_action(client, "grant_tokens", [account], tokens=5_000, memo="sneaky", apply="1")

    assert not LedgerEntry.objects.exists()


def test_ledger_admin_is_read_only(finance_client, tenant):
    from billing.services import tokens_grant

    entry = tokens_grant(tenant=tenant, tokens=10, memo="x")

    assert finance_client.get("/admin/billing/ledgerentry/").status_code == 200
    assert finance_client.get("/admin/billing/ledgerentry/add/").status_code == 403
    assert finance_client.get(f"/admin/billing/ledgerentry/{entry.pk}/delete/").status_code == 403
    finance_client.post(f"/admin/billing/ledgerentry/{entry.pk}/change/", {"memo": "changed", "available_delta": 999})
    entry.refresh_from_db()
    assert (entry.memo, entry.available_delta) == ("x", 10)

    superuser = User.objects.create_superuser("root", "root@example.com", "pw")
    finance_client.force_login(superuser)
    assert finance_client.get("/admin/billing/ledgerentry/add/").status_code == 403
    assert finance_client.get(f"/admin/billing/ledgerentry/{entry.pk}/delete/").status_code == 403


def test_ledger_filters_and_csv_export(finance_client, tenant, other_tenant):
    from billing.services import tokens_grant

    a = tokens_grant(tenant=tenant, tokens=10, memo="first, with a comma")
    b = tokens_grant(tenant=other_tenant, tokens=-4, memo="second", kind="adjustment")

    filtered = finance_client.get("/admin/billing/ledgerentry/", {"kind__exact": "adjustment"})
    export = finance_client.post(
        "/admin/billing/ledgerentry/", {"action": "export_csv", "_selected_action": [a.pk, b.pk]}
    )

    assert "second" in filtered.content.decode() and "first, with a comma" not in filtered.content.decode()
    assert export["Content-Type"].startswith("text/csv")
    lines = export.content.decode().splitlines()
    assert lines[0].startswith("id,created_at,tenant,kind")
    assert '"first, with a comma"' in lines[1] and tenant.slug in lines[1]
    assert len(lines) == 3


def test_finance_edits_pack_prices(finance_client, token_packs):
    price = TokenPackPrice.objects.get(pack__code="starter", currency="usd")
    response = finance_client.get(f"/admin/billing/tokenpack/{token_packs['starter'].pk}/change/")

    assert response.status_code == 200
    assert finance_client.get(f"/admin/billing/tokenpack/{token_packs['starter'].pk}/delete/").status_code == 403
    assert price.unit_amount == 500


def test_topups_and_events_are_listed(client, finance_client, fake_stripe, checkout, tenant):
    session = fake_stripe.pay(checkout()["id"])
    deliver(client, make_event("checkout.session.completed", session))
    finance_client.force_login(User.objects.get(username="fin"))

    topups = finance_client.get("/admin/billing/topup/").content.decode()
    events = finance_client.get("/admin/billing/stripeevent/").content.decode()

    assert session["id"] in topups and session["payment_intent"] in topups
    assert "checkout.session.completed" in events
    assert finance_client.get("/admin/billing/stripeevent/add/").status_code == 403


def test_reconciliation_page_shows_and_credits_missing_sessions(client, finance_client, fake_stripe, checkout, tenant):
    ok = fake_stripe.pay(checkout()["id"])
    deliver(client, make_event("checkout.session.completed", ok))
    lost = fake_stripe.pay(checkout("team")["id"])
    finance_client.force_login(User.objects.get(username="fin"))

    page = finance_client.get("/admin/billing/topup/reconcile/", {"days": 3}).content.decode()

    assert "1 paid session(s) match" in page
    assert lost["id"] in page and ok["id"] not in page

    finance_client.post("/admin/billing/topup/reconcile/?days=3")
    again = finance_client.get("/admin/billing/topup/reconcile/", {"days": 3}).content.decode()

    assert "2 paid session(s) match" in again
    assert BalanceAccount.objects.get(tenant=tenant).available == 1_100_000
    assert_ledger_invariant(tenant)


def test_reconciliation_needs_permission(client, db):
    user = User.objects.create_user("ops", "ops@example.com", "pw", is_staff=True)
    client.force_login(user)

    assert client.get("/admin/billing/topup/reconcile/").status_code == 403
