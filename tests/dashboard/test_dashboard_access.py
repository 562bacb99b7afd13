"""Role checks and tenant isolation on every dashboard URL (Django test client)."""

from __future__ import annotations

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db

# (url name, needs a job id) -> roles that may open it with GET
PAGES = {
    "dashboard:overview": {"owner", "admin", "member", "billing"},
    "dashboard:transcriptions": {"owner", "admin", "member"},
    "dashboard:transcription_new": {"owner", "admin", "member"},
    "dashboard:live": {"owner", "admin", "member"},
    "dashboard:hotwords": {"owner", "admin", "member"},
    "dashboard:keys": {"owner", "admin"},
    "dashboard:developers": {"owner", "admin"},
    "dashboard:billing": {"owner", "admin", "billing"},
    "dashboard:members": {"owner", "admin"},
}
JOB_PAGES = {
    "dashboard:transcription_detail": {},
    "dashboard:transcription_status": {},
    "dashboard:transcription_row": {},
    "dashboard:transcription_download": {"fmt": "srt"},
}


@pytest.mark.parametrize("name", [*PAGES, *JOB_PAGES])
def test_anonymous_visitors_are_sent_to_login(client, tenant, make_job, name):
    kwargs = {"transcription_id": make_job(tenant).pk, **JOB_PAGES[name]} if name in JOB_PAGES else {}
    url = reverse(name, kwargs=kwargs)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))
    assert "next=" in response["Location"]


@pytest.mark.parametrize("role", ["owner", "admin", "member", "billing"])
@pytest.mark.parametrize("name", list(PAGES))
def test_role_checks_on_every_page(tenant, make_member, login, role, name):
    client = login(make_member(tenant, role))
    response = client.get(reverse(name))
    expected = 200 if role in PAGES[name] else 403
    assert response.status_code == expected, (role, name, response.status_code)


@pytest.mark.parametrize("role", ["owner", "admin", "member", "billing"])
@pytest.mark.parametrize("name", list(JOB_PAGES))
def test_role_checks_on_job_pages(tenant, make_member, make_job, login, role, name):
    job = make_job(tenant)
    client = login(make_member(tenant, role))
    response = client.get(reverse(name, kwargs={"transcription_id": job.pk, **JOB_PAGES[name]}))
    expected = 403 if role == "billing" else 200
    assert response.status_code == expected


def test_navigation_shows_only_permitted_pages(tenant, make_member, login):
    member_page = login(make_member(tenant, "member")).get(reverse("dashboard:overview")).content.decode()
    assert reverse("dashboard:billing") not in member_page
    assert reverse("dashboard:keys") not in member_page
    assert reverse("dashboard:members") not in member_page
    assert reverse("dashboard:transcriptions") in member_page
    billing_page = login(make_member(tenant, "billing")).get(reverse("dashboard:overview")).content.decode()
    assert reverse("dashboard:billing") in billing_page
    assert reverse("dashboard:transcriptions") not in billing_page


@pytest.mark.parametrize("name", list(JOB_PAGES))
def test_another_tenants_job_is_a_404(tenant, other_tenant, owner_client, make_job, name):
    foreign = make_job(other_tenant, text="secret of globex")
    response = owner_client.get(reverse(name, kwargs={"transcription_id": foreign.pk, **JOB_PAGES[name]}))
    assert response.status_code == 404
    assert b"secret of globex" not in response.content


@pytest.mark.parametrize("name", ["dashboard:transcription_cancel", "dashboard:transcription_delete"])
def test_another_tenants_job_cannot_be_canceled_or_deleted(other_tenant, owner_client, make_job, name):
    foreign = make_job(other_tenant, status="queued", billed_tokens=None, tokens=None)
    response = owner_client.post(reverse(name, kwargs={"transcription_id": foreign.pk}))
    assert response.status_code == 404
    foreign.refresh_from_db()
    assert foreign.status == "queued" and foreign.deleted_at is None


def test_malformed_job_id_is_a_404(owner_client):
    assert owner_client.get("/app/transcriptions/not-a-uuid/").status_code == 404


def test_foreign_audio_is_a_404(other_tenant, owner_client, make_job):
    foreign = make_job(other_tenant)
    assert owner_client.get(reverse("dashboard:transcription_audio", args=[foreign.pk])).status_code == 404


def test_lists_show_only_the_current_tenants_data(tenant, other_tenant, owner_client, make_job):
    from tenants.services import api_key_create

    make_job(tenant, filename="ours.wav")
    make_job(other_tenant, filename="theirs.wav")
    api_key_create(tenant=other_tenant, name="globex-key")
    jobs = owner_client.get(reverse("dashboard:transcriptions")).content.decode()
    assert "ours.wav" in jobs and "theirs.wav" not in jobs
    keys = owner_client.get(reverse("dashboard:keys")).content.decode()
    assert "globex-key" not in keys
    overview = owner_client.get(reverse("dashboard:overview")).content.decode()
    assert "theirs.wav" not in overview


def test_another_tenants_key_cannot_be_revoked(other_tenant, owner_client):
    from tenants.services import api_key_create

    key, _ = api_key_create(tenant=other_tenant, name="globex-key")
    response = owner_client.post(reverse("dashboard:key_revoke", args=[key.pk]))
    assert response.status_code == 404
    key.refresh_from_db()
    assert not key.revoked


def test_another_tenants_hotword_list_is_a_404(other_tenant, owner_client):
    from transcription.models import HotwordList

    foreign = HotwordList.objects.create(tenant=other_tenant, name="globex words", words="widget")
    assert owner_client.get(reverse("dashboard:hotword_edit", args=[foreign.pk])).status_code == 404
    assert owner_client.post(reverse("dashboard:hotword_delete", args=[foreign.pk])).status_code == 404
    assert HotwordList.objects.filter(pk=foreign.pk).exists()


def test_another_tenants_member_cannot_be_removed(other_tenant, owner_client, make_member):
    from tenants.models import Membership

    stranger = make_member(other_tenant, "member")
    membership = Membership.objects.get(user=stranger)
    assert owner_client.post(reverse("dashboard:member_remove", args=[membership.pk])).status_code == 404
    assert Membership.objects.filter(pk=membership.pk).exists()


def test_write_endpoints_respect_roles(tenant, make_member, login):
    member = login(make_member(tenant, "member"))
    assert member.post(reverse("dashboard:keys"), {"name": "x"}).status_code == 403
    assert member.post(reverse("dashboard:members"), {"email": "a@b.c", "role": "owner"}).status_code == 403
    assert member.post(reverse("dashboard:billing_checkout"), {"pack": "starter"}).status_code == 403
    billing = login(make_member(tenant, "billing"))
    assert billing.post(reverse("dashboard:transcription_new"), {}).status_code == 403


def test_session_tenant_is_validated_against_memberships(tenant, other_tenant, owner, owner_client):
    session = owner_client.session
    session["tenant_id"] = other_tenant.pk  # not a member there
    session.save()
    response = owner_client.get(reverse("dashboard:overview"))
    assert response.status_code == 200
    assert response.context["current_tenant"] == tenant


def test_tenant_switcher(tenant, other_tenant, owner, owner_client, make_job):
    from tenants.models import Membership

    Membership.objects.create(tenant=other_tenant, user=owner, role="member")
    foreign = make_job(other_tenant, filename="globex.wav")
    assert owner_client.get(reverse("dashboard:transcription_detail", args=[foreign.pk])).status_code == 404
    page = owner_client.get(reverse("dashboard:overview")).content.decode()
    assert 'id="tenant-switch"' in page
    response = owner_client.post(reverse("dashboard:switch_tenant"), {"tenant": other_tenant.pk})
    assert response.status_code == 302
    assert owner_client.get(reverse("dashboard:transcription_detail", args=[foreign.pk])).status_code == 200
    # In the other tenant this user is a member: no keys page there.
    assert owner_client.get(reverse("dashboard:keys")).status_code == 403


def test_switching_to_a_tenant_without_membership_is_refused(tenant, other_tenant, owner_client):
    response = owner_client.post(reverse("dashboard:switch_tenant"), {"tenant": other_tenant.pk})
    assert response.status_code == 404
    assert owner_client.get(reverse("dashboard:overview")).context["current_tenant"] == tenant


def test_removed_member_loses_access_at_once(tenant, make_member, login):
    from tenants.models import Membership

    user = make_member(tenant, "admin")
    client = login(user)
    assert client.get(reverse("dashboard:keys")).status_code == 200
    Membership.objects.filter(user=user).delete()
    response = client.get(reverse("dashboard:keys"))
    assert response.status_code == 302 and response["Location"] == reverse("dashboard:welcome")


def test_csrf_is_enforced(tenant, owner):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    assert client.post(reverse("dashboard:keys"), {"name": "x"}).status_code == 403
