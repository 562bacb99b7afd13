"""The first day without an operator: welcome tokens, no fake purchases without Stripe, the owner's password,
the finance job page, the statement's way back, the favicon; and the retention settings page."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.urls import reverse

from billing.models import LedgerEntry, TopUp
from billing.selectors import ledger_sums
from tenants.models import Membership, Tenant

pytestmark = pytest.mark.django_db


def _signup(client, email, company="First Day Ltd", password="An0ther-long-pass"):
    return client.post(
        reverse("account_signup"),
        {"email": email, "password1": password, "password2": password, "company": company},
    )


def test_signup_grants_free_tokens_with_a_memo(client, settings):
    settings.SIGNUP_FREE_TOKENS = 2000
    assert _signup(client, "new@first.test").status_code == 302
    tenant = Membership.objects.get(user__email="new@first.test").tenant
    grant = LedgerEntry.objects.get(tenant=tenant)
    assert (grant.kind, grant.available_delta, grant.actor_label) == ("grant", 2000, "signup")
    assert "SIGNUP_FREE_TOKENS" in grant.memo
    assert ledger_sums(tenant=tenant) == (2000, 0) == (tenant.account.available, tenant.account.held)


def test_signup_grant_can_be_switched_off(client, settings):
    settings.SIGNUP_FREE_TOKENS = 0
    _signup(client, "zero@first.test")
    tenant = Membership.objects.get(user__email="zero@first.test").tenant
    assert not LedgerEntry.objects.filter(tenant=tenant).exists()
    assert tenant.account.available == 0


def test_without_stripe_no_buy_buttons_and_nothing_recorded(owner_client, tenant, settings, token_packs_seeded):
    settings.STRIPE_SECRET_KEY = ""
    page = owner_client.get(reverse("dashboard:billing")).content.decode()
    assert 'data-testid="payments-off"' in page
    assert reverse("dashboard:billing_checkout") not in page  # no Buy forms
    response = owner_client.post(reverse("dashboard:billing_checkout"), {"pack": "starter", "currency": "usd"})
    assert response.status_code == 302
    assert not TopUp.objects.exists()
    assert "Buy tokens" not in owner_client.get(reverse("dashboard:overview")).content.decode()
    settings.STRIPE_SECRET_KEY = "sk_test_configured"
    assert "Buy tokens" in owner_client.get(reverse("dashboard:overview")).content.decode()


def test_api_checkout_without_stripe_is_503_and_records_nothing(api_client, settings, token_packs_seeded):
    settings.STRIPE_SECRET_KEY = ""
    response = api_client.post("/api/v1/billing/checkout", {"pack": "starter"}, format="json")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "payments_unavailable"
    assert not TopUp.objects.exists()


@pytest.fixture
def token_packs_seeded():
    from billing.models import TokenPack

    assert TokenPack.objects.filter(code="starter").exists()  # seeded by billing's data migration


def test_create_tenant_tells_how_the_owner_sets_a_password(capsys):
    call_command("create_tenant", "lab", "--owner-email", "boss@lab.test")
    out = capsys.readouterr().out
    assert "has no password yet" in out and "/accounts/password/reset/" in out and "--password" in out


def test_create_tenant_with_password_signs_in_at_once(client):
    call_command("create_tenant", "lab2", "--owner-email", "boss2@lab.test", "--password", "Ver1-long-secret")
    response = client.post(reverse("account_login"), {"login": "boss2@lab.test", "password": "Ver1-long-secret"})
    assert response.status_code == 302 and response["Location"] == "/app/"
    assert Tenant.objects.get(slug="lab2").memberships.get().role == "owner"


def test_create_tenant_refuses_a_weak_password():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="Password refused"):
        call_command("create_tenant", "lab3", "--owner-email", "b3@lab.test", "--password", "123")
    assert not Tenant.objects.filter(slug="lab3").exists()


def test_finance_job_page_linked_from_the_ledger(client, tenant, make_job, django_user_model):
    from django.contrib.auth.models import Group

    from billing.services import hold_place

    job = make_job(tenant, status="queued", held_tokens=0, tokens=None, billed_tokens=None)
    from billing.services import tokens_grant

    tokens_grant(tenant=tenant, tokens=100, memo="t")
    hold_place(tenant_id=tenant.pk, reference=job.pk, tokens=10)
    staff = django_user_model.objects.create_user("fin", "fin@op.test", "x", is_staff=True)
    staff.groups.add(Group.objects.get(name="Finance"))
    client.force_login(staff)
    ledger = client.get(reverse("admin:billing_ledgerentry_changelist")).content.decode()
    job_url = reverse("admin:transcription_transcription_change", args=[job.pk])
    assert job_url in ledger
    page = client.get(job_url)
    assert page.status_code == 200
    body = page.content.decode()
    assert "Money" in body and "hold" in body  # the job's ledger movements inline
    assert job.text not in body  # finance sees costs, not transcripts


def test_statement_links_back_and_favicon(owner_client, tenant, client):
    from django.utils import timezone

    period = timezone.now().strftime("%Y-%m")
    page = owner_client.get(reverse("dashboard:billing_statement", args=[period])).content.decode()
    assert reverse("dashboard:billing") in page
    favicon = client.get("/favicon.ico")
    assert favicon.status_code == 301 and favicon["Location"].endswith("favicon.svg")
    assert "favicon.svg" in owner_client.get(reverse("dashboard:overview")).content.decode()


def test_retention_settings_owner_and_admin_only(owner_client, tenant, make_member, login):
    url = reverse("dashboard:settings")
    page = owner_client.get(url)
    assert page.status_code == 200 and 'value="30"' in page.content.decode()
    response = owner_client.post(url, {"audio_retention_days": "7", "transcript_retention_days": ""})
    assert response.status_code == 302
    tenant.refresh_from_db()
    assert (tenant.audio_retention_days, tenant.transcript_retention_days) == (7, None)
    assert owner_client.post(url, {"audio_retention_days": "0"}).status_code == 400
    assert login(make_member(tenant, "admin")).get(url).status_code == 200
    for role in ("member", "billing"):
        assert login(make_member(tenant, role)).post(url, {"audio_retention_days": "1"}).status_code == 403
    tenant.refresh_from_db()
    assert tenant.audio_retention_days == 7
