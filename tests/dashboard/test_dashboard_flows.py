"""Dashboard behaviour through the Django test client: signup, invitations, keys, uploads, downloads, i18n."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.urls import reverse

from tenants.models import Invitation, Membership

pytestmark = pytest.mark.django_db


def _signup(client, email, company="Lecture Hall Ltd", password="An0ther-long-pass"):
    return client.post(
        reverse("account_signup"),
        {"email": email, "password1": password, "password2": password, "company": company},
    )


def _confirm_link(message) -> str:
    return re.search(r"https?://[^\s]+/accounts/confirm-email/[^\s]+", message.body).group(0)


def test_signup_creates_the_tenant_and_makes_the_user_owner(client):
    response = _signup(client, "ada@lecture.test")
    assert response.status_code == 302
    membership = Membership.objects.select_related("tenant").get(user__email="ada@lecture.test")
    assert membership.role == "owner"
    assert membership.tenant.name == "Lecture Hall Ltd"
    assert membership.tenant.account.available == 2000  # SIGNUP_FREE_TOKENS (default)
    # Mandatory verification: the email carries the link; following it signs the user in.
    assert len(mail.outbox) == 1
    link = _confirm_link(mail.outbox[0])
    path = link.split("://", 1)[1].split("/", 1)[1]
    client.get("/" + path)
    # Before verification the account cannot sign in.
    assert client.post(reverse("account_login"), {"login": "ada@lecture.test", "password": "An0ther-long-pass"})[
        "Location"
    ].startswith("/accounts/confirm-email")
    assert client.post("/" + path).status_code == 302
    response = client.post(reverse("account_login"), {"login": "ada@lecture.test", "password": "An0ther-long-pass"})
    assert response["Location"] == "/app/"
    assert client.get(reverse("dashboard:overview")).status_code == 200


def test_signup_page_has_a_labelled_company_field(client):
    page = client.get(reverse("account_signup")).content.decode()
    assert 'name="company"' in page
    assert '<label for="id_company">' in page


def test_signup_without_company_uses_the_email_domain(client):
    _signup(client, "bob@newsroom.test", company="")
    assert Membership.objects.get(user__email="bob@newsroom.test").tenant.name == "newsroom.test"


def test_two_signups_with_the_same_company_get_distinct_tenants(client):
    from django.test import Client

    _signup(client, "a@x.test", company="Same Co")
    _signup(Client(), "b@y.test", company="Same Co")
    tenants = {m.tenant.slug for m in Membership.objects.filter(role="owner")}
    assert len(tenants) == 2


def test_invitation_by_email_then_accept(tenant, owner, owner_client, make_member, login):
    response = owner_client.post(reverse("dashboard:members"), {"email": "new@acme.test", "role": "billing"})
    assert response.status_code == 302
    invitation = Invitation.objects.get(email="new@acme.test")
    assert invitation.role == "billing" and invitation.tenant == tenant
    assert len(mail.outbox) == 1
    assert invitation.token in mail.outbox[0].body

    # Someone else with the link cannot take it.
    stranger = login(make_member(tenant.__class__.objects.create(slug="z", name="Z"), "owner", "z@z.test"))
    stranger.post(reverse("dashboard:invitation_accept", args=[invitation.token]))
    assert not Membership.objects.filter(tenant=tenant, user__email="z@z.test").exists()

    from tests.factories import UserFactory

    invitee = UserFactory(username="new@acme.test")
    client = login(invitee)
    assert client.get(reverse("dashboard:overview")).status_code == 302  # no workspace yet -> welcome
    response = client.post(reverse("dashboard:invitation_accept", args=[invitation.token]))
    assert response.status_code == 302
    assert Membership.objects.get(tenant=tenant, user=invitee).role == "billing"
    assert client.get(reverse("dashboard:billing")).status_code == 200
    assert client.get(reverse("dashboard:transcriptions")).status_code == 403
    # Used once.
    invitation.refresh_from_db()
    assert invitation.accepted_at is not None


def test_invited_signup_joins_the_inviting_tenant(tenant, owner, owner_client, client):
    owner_client.post(reverse("dashboard:members"), {"email": "joiner@acme.test", "role": "member"})
    token = Invitation.objects.get(email="joiner@acme.test").token
    assert client.get(reverse("dashboard:invitation_accept", args=[token])).status_code == 200
    _signup(client, "joiner@acme.test", company="")
    memberships = Membership.objects.filter(user__email="joiner@acme.test")
    assert [(m.tenant_id, m.role) for m in memberships] == [(tenant.pk, "member")]


def test_admin_cannot_create_or_touch_owners(tenant, owner, make_member, login):
    admin = login(make_member(tenant, "admin"))
    response = admin.post(reverse("dashboard:members"), {"email": "boss@acme.test", "role": "owner"})
    assert response.status_code == 400
    assert not Invitation.objects.filter(email="boss@acme.test").exists()
    owner_membership = Membership.objects.get(user=owner)
    admin.post(reverse("dashboard:member_role", args=[owner_membership.pk]), {"role": "member"})
    admin.post(reverse("dashboard:member_remove", args=[owner_membership.pk]))
    owner_membership.refresh_from_db()
    assert owner_membership.role == "owner"


def test_owner_changes_roles_and_removes_members_but_keeps_one_owner(tenant, owner, owner_client, make_member):
    user = make_member(tenant, "member")
    m = Membership.objects.get(user=user)
    owner_client.post(reverse("dashboard:member_role", args=[m.pk]), {"role": "admin"})
    m.refresh_from_db()
    assert m.role == "admin"
    owner_client.post(reverse("dashboard:member_remove", args=[m.pk]))
    assert not Membership.objects.filter(pk=m.pk).exists()
    from portal.errors import Conflict
    from tenants.services import membership_remove

    with pytest.raises(Conflict):
        membership_remove(membership=Membership.objects.get(user=owner))


def test_key_is_shown_once_and_revoke_makes_the_api_refuse_it(tenant, owner_client):
    from rest_framework.test import APIClient

    from tests.dashboard.conftest import api_probe_path

    response = owner_client.post(reverse("dashboard:keys"), {"name": "ci-pipeline"}, follow=True)
    assert response.status_code == 200
    raw = response.context["new_key"]["raw"]
    assert raw in response.content.decode()
    assert response["Cache-Control"] == "no-store"
    assert raw not in owner_client.get(reverse("dashboard:keys")).content.decode()  # shown once

    probe = api_probe_path()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api.get(probe).status_code == 200
    key = tenant.api_keys.get(name="ci-pipeline")
    owner_client.post(reverse("dashboard:key_revoke", args=[key.pk]))
    assert api.get(probe).status_code == 401


def test_upload_with_too_little_balance_says_how_to_buy(tenant, owner_client, tmp_path):
    from tests.audio_samples import tone, write_wav

    path = write_wav(tmp_path / "a.wav", tone(2.0))
    with open(path, "rb") as fh:
        response = owner_client.post(
            reverse("dashboard:transcription_new"), {"files": fh, "language": "auto", "itn": "on"}
        )
    assert response.status_code == 402
    page = response.content.decode()
    assert "a.wav" in page
    assert reverse("dashboard:billing") in page


def test_member_without_billing_access_is_told_whom_to_ask(tenant, make_member, login, tmp_path):
    from tests.audio_samples import tone, write_wav

    client = login(make_member(tenant, "member"))
    path = write_wav(tmp_path / "a.wav", tone(1.0))
    with open(path, "rb") as fh:
        response = client.post(reverse("dashboard:transcription_new"), {"files": fh, "language": "auto"})
    assert response.status_code == 402
    assert reverse("dashboard:billing") not in response.content.decode().split("<main", 1)[1]


def test_bad_upload_says_why(tenant, owner_client, grant, tmp_path):
    grant(tenant, 10_000)
    bad = tmp_path / "notes.mp3"
    bad.write_text("this is not audio at all " * 100)
    with open(bad, "rb") as fh:
        response = owner_client.post(reverse("dashboard:transcription_new"), {"files": fh, "language": "auto"})
    assert response.status_code == 400
    assert "notes.mp3" in response.content.decode()
    assert tenant.transcriptions.count() == 0


def test_upload_without_files_is_a_form_error(owner_client):
    response = owner_client.post(reverse("dashboard:transcription_new"), {"language": "auto"})
    assert response.status_code == 400
    assert "errorlist" in response.content.decode()


def test_several_files_at_once(tenant, owner_client, grant, tmp_path):
    from tests.audio_samples import tone, write_wav

    grant(tenant, 10_000)
    files = [open(write_wav(tmp_path / f"f{i}.wav", tone(1.0 + i)), "rb") for i in range(2)]
    try:
        response = owner_client.post(
            reverse("dashboard:transcription_new"),
            {"files": files, "language": "zh", "hotwords": "转写\n听写"},
        )
    finally:
        for fh in files:
            fh.close()
    assert response.status_code == 302 and response["Location"] == reverse("dashboard:transcriptions")
    jobs = list(tenant.transcriptions.all())
    assert len(jobs) == 2
    assert all(j.source == "dashboard" and j.options["language"] == "zh" for j in jobs)
    assert jobs[0].options["hotwords"] == ["转写", "听写"]


def test_saved_hotword_list_is_applied(tenant, owner_client, grant, tmp_path):
    from tests.audio_samples import tone, write_wav

    grant(tenant, 10_000)
    owner_client.post(reverse("dashboard:hotwords"), {"name": "Legal", "words": "原告\n被告\n"})
    hot = tenant.hotword_lists.get(name="Legal")
    with open(write_wav(tmp_path / "x.wav", tone(1.0)), "rb") as fh:
        response = owner_client.post(
            reverse("dashboard:transcription_new"), {"files": fh, "language": "auto", "hotword_list": hot.pk}
        )
    job = tenant.transcriptions.get()
    assert response["Location"] == reverse("dashboard:transcription_detail", args=[job.pk])
    assert job.options["hotwords"] == ["原告", "被告"]


def test_hotword_list_edit_and_duplicate_name(tenant, owner_client):
    owner_client.post(reverse("dashboard:hotwords"), {"name": "A", "words": "x"})
    owner_client.post(reverse("dashboard:hotwords"), {"name": "B", "words": "y"})
    b = tenant.hotword_lists.get(name="B")
    response = owner_client.post(reverse("dashboard:hotword_edit", args=[b.pk]), {"name": "A", "words": "y"})
    assert response.status_code == 400
    owner_client.post(reverse("dashboard:hotword_edit", args=[b.pk]), {"name": "B2", "words": "y\nz"})
    b.refresh_from_db()
    assert (b.name, b.word_list) == ("B2", ["y", "z"])


def test_detail_shows_transcript_segments_receipt_and_downloads(tenant, owner_client, make_job):
    job = make_job(tenant)
    page = owner_client.get(reverse("dashboard:transcription_detail", args=[job.pk])).content.decode()
    assert "欢迎使用我们的转写服务" in page
    assert "0:02.0" in page  # segment timestamps (no audio kept: no player)
    assert 'data-testid="receipt-billed">12<' in page
    for fmt in ("txt", "srt", "vtt", "json"):
        assert reverse("dashboard:transcription_download", args=[job.pk, fmt]) in page
    srt = owner_client.get(reverse("dashboard:transcription_download", args=[job.pk, "srt"]))
    assert srt.status_code == 200
    assert "00:00:02,000 --> 00:00:04,200" in srt.content.decode()
    assert 'filename="meeting.srt"' in srt["Content-Disposition"]


def test_running_job_polls_and_reloads_when_done(tenant, owner_client, make_job):
    job = make_job(tenant, status="running", progress=0.4, text="", segments=[], tokens=None, billed_tokens=None)
    page = owner_client.get(reverse("dashboard:transcription_detail", args=[job.pk])).content.decode()
    assert 'hx-trigger="every 1s"' in page and 'aria-valuenow="40"' in page
    job.status, job.progress = "succeeded", 1.0
    job.save(update_fields=["status", "progress"])
    response = owner_client.get(reverse("dashboard:transcription_status", args=[job.pk]), HTTP_HX_REQUEST="true")
    assert response["HX-Refresh"] == "true"
    assert "hx-trigger" not in response.content.decode()


def test_audio_supports_range_requests(tenant, owner_client, make_job):
    from django.core.files.base import ContentFile

    job = make_job(tenant)
    job.audio.save("x", ContentFile(b"0123456789" * 10), save=True)
    full = owner_client.get(reverse("dashboard:transcription_audio", args=[job.pk]))
    assert full.status_code == 200 and b"".join(full.streaming_content) == b"0123456789" * 10
    part = owner_client.get(reverse("dashboard:transcription_audio", args=[job.pk]), HTTP_RANGE="bytes=10-19")
    assert part.status_code == 206 and part.content == b"0123456789"
    assert part["Content-Range"] == "bytes 10-19/100"
    page = owner_client.get(reverse("dashboard:transcription_detail", args=[job.pk])).content.decode()
    assert 'id="player"' in page and 'data-start="2.000"' in page
    job.audio.delete(save=False)


def test_cancel_and_delete(tenant, owner_client, make_job, grant):
    from billing.services import hold_place

    grant(tenant, 1000)
    job = make_job(tenant, status="queued", progress=0, tokens=None, billed_tokens=None, held_tokens=50)
    hold_place(tenant_id=tenant.pk, reference=job.pk, tokens=50)
    owner_client.post(reverse("dashboard:transcription_cancel", args=[job.pk]))
    job.refresh_from_db()
    assert job.status == "canceled"
    tenant.account.refresh_from_db()
    assert (tenant.account.available, tenant.account.held) == (1000, 0)
    response = owner_client.post(reverse("dashboard:transcription_delete", args=[job.pk]))
    assert response["Location"] == reverse("dashboard:transcriptions")
    assert owner_client.get(reverse("dashboard:transcription_detail", args=[job.pk])).status_code == 404


def test_overview_shows_balance_chart_and_recent_jobs(tenant, owner_client, make_job, grant):
    from django.utils import timezone

    grant(tenant, 5000)
    make_job(tenant, finished_at=timezone.now(), filename="lecture-1.wav")
    page = owner_client.get(reverse("dashboard:overview")).content.decode()
    assert "5,000" in page
    assert "<svg" in page and 'class="bar"' in page
    assert "lecture-1.wav" in page


def test_billing_page_lists_packs_and_ledger(tenant, owner_client, grant, settings):
    settings.STRIPE_SECRET_KEY = "sk_test_configured"  # without one the page says buying is off (test_first_day)
    grant(tenant, 777)
    page = owner_client.get(reverse("dashboard:billing")).content.decode()
    assert "777" in page
    assert "test grant" in page
    assert 'name="pack" value="starter"' in page


def test_timezone_endpoint_and_display(tenant, owner_client, make_job):
    from datetime import UTC, datetime

    job = make_job(tenant)
    type(job).objects.filter(pk=job.pk).update(created_at=datetime(2026, 1, 1, 23, 30, tzinfo=UTC))
    assert owner_client.post(reverse("dashboard:set_timezone"), {"tz": "Nope/Nowhere"}).status_code == 400
    assert owner_client.post(reverse("dashboard:set_timezone"), {"tz": "Asia/Shanghai"}).status_code == 204
    page = owner_client.get(reverse("dashboard:transcriptions")).content.decode()
    assert "2026-01-02 07:30" in page


def test_chinese_interface(tenant, owner_client):
    owner_client.post(reverse("set_language"), {"language": "zh-hans", "next": "/app/"})
    page = owner_client.get(reverse("dashboard:overview"), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "可用" in page and 'lang="zh-hans"' in page


def test_browser_language_picks_chinese(client):
    page = client.get(reverse("account_login"), HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9").content.decode()
    assert 'lang="zh-hans"' in page


def test_monthly_statement_for_billing_roles_only(tenant, other_tenant, make_member, login, grant):
    from django.utils import timezone

    grant(tenant, 500)
    period = timezone.now().strftime("%Y-%m")
    billing = login(make_member(tenant, "billing"))
    page = billing.get(reverse("dashboard:billing")).content.decode()
    assert reverse("dashboard:billing_statement", args=[period]) in page
    response = billing.get(reverse("dashboard:billing_statement", args=[period]))
    assert response.status_code == 200 and tenant.name in response.content.decode()
    assert billing.get(reverse("dashboard:billing_statement", args=["2026-13"])).status_code == 404
    member = login(make_member(tenant, "member"))
    assert member.get(reverse("dashboard:billing_statement", args=[period])).status_code == 403


def test_two_factor_setup_is_reachable(owner_client):
    assert owner_client.get("/accounts/2fa/").status_code == 200
    response = owner_client.get("/accounts/2fa/totp/activate/")
    assert response.status_code in (200, 302)
