"""Browser flows (Playwright + Debian chromium) against the live server and a real ASR worker."""

from __future__ import annotations

import re

import pytest
import requests
from django.core import mail

from tests.conftest import wait_for
from tests.dashboard.conftest import api_probe_path, browser_login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_signup_verify_upload_progress_transcript_download(live_server, asr_worker, new_page, shot, grant, tmp_path):
    from tenants.models import Membership
    from tests.audio_samples import sentence, speak_fixture, write_wav

    page = new_page()
    # Anonymous visitors are sent to the login page.
    page.goto("/app/")
    assert "/accounts/login/" in page.url
    shot(page, "login")

    page.goto("/accounts/signup/")
    page.fill("#id_email", "ada@lecture.test")
    page.fill("#id_company", "Lecture Hall Ltd")
    page.fill("#id_password1", "An0ther-long-pass")
    page.fill("#id_password2", "An0ther-long-pass")
    shot(page, "signup")
    page.locator("main form button[type=submit]").click()
    page.wait_for_url("**/accounts/confirm-email/")

    # Verify: follow the link from the email.
    message = wait_for(lambda: mail.outbox and mail.outbox[-1], timeout=10, message="verification email")
    link = re.search(r"https?://\S+/accounts/confirm-email/\S+", message.body).group(0)
    page.goto(link)
    page.locator("main form button[type=submit]").click()
    browser_login(page, "ada@lecture.test", "An0ther-long-pass")
    tenant = Membership.objects.get(user__email="ada@lecture.test", role="owner").tenant
    assert page.locator("h1").inner_text() == "Lecture Hall Ltd"

    # An empty workspace says what to do next.
    assert page.get_by_text("No transcriptions yet.").is_visible()
    grant(tenant, 50_000)
    page.reload()
    shot(page, "overview-empty")

    # Upload a real recording.
    spoken = sentence("zh_welcome")
    wav = write_wav(tmp_path / "welcome.wav", speak_fixture("zh_welcome"))
    page.get_by_role("link", name="Upload audio").first.click()
    page.wait_for_url("**/app/transcriptions/new/")
    page.set_input_files("#id_files", str(wav))
    page.select_option("#id_language", "zh")
    shot(page, "upload")
    page.get_by_role("button", name="Upload and transcribe").click()
    page.wait_for_url(re.compile(r".*/app/transcriptions/[0-9a-f-]{36}/$"))

    # Live progress (htmx polling) until the page reloads with the transcript.
    status = page.locator("[data-testid=transcription-status]").first
    assert status.inner_text() in ("Queued", "Running", "Done")
    if status.inner_text() != "Done":
        shot(page, "job-progress")
    page.locator("#transcript-text").wait_for(timeout=120_000)
    assert page.locator("#transcript-text").inner_text().strip() == spoken["text"], asr_worker.log()[-2000:]
    billed = int(page.locator("[data-testid=receipt-billed]").inner_text().replace(",", ""))
    assert billed == len(spoken["text"])  # one token per Han character
    assert page.locator(".segments li").count() >= 1
    shot(page, "job-detail")

    # Click-to-play: the player can fetch and seek the audio.
    page.locator(".segments button.ts").first.click()
    page.wait_for_function("document.getElementById('player').readyState >= 1")

    with page.expect_download() as download_info:
        page.get_by_role("link", name="SRT").click()
    download = download_info.value
    assert download.suggested_filename == "welcome.srt"
    srt = open(download.path(), encoding="utf-8").read()
    assert "00:00:00," in srt and "-->" in srt and spoken["text"] in srt

    page.goto("/app/transcriptions/")
    assert page.locator("tbody tr").count() == 1
    shot(page, "transcriptions")
    page.goto("/app/")
    shot(page, "overview")
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    shot(page, "overview-phone")
    page.goto("/app/transcriptions/")
    shot(page, "transcriptions-phone")


def test_create_and_revoke_a_key_then_use_it_against_the_api(live_server, tenant, owner, new_page, shot):
    page = new_page()
    browser_login(page, owner.email)
    page.get_by_role("link", name="API keys").click()
    assert page.get_by_text("No API keys yet.").is_visible()
    page.fill("#id_name", "ci-pipeline")
    page.get_by_role("button", name="Create key").click()
    raw = page.locator("[data-testid=new-key]").inner_text().strip()
    assert page.get_by_role("button", name="Copy key").is_visible()
    shot(page, "keys-created")

    api = f"{live_server.url}{api_probe_path()}"
    headers = {"Authorization": f"Bearer {raw}"}
    assert requests.get(api, headers=headers, timeout=10).status_code == 200

    page.goto("/app/keys/")
    assert raw not in page.content()  # shown once
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Revoke ci-pipeline").click()
    page.get_by_text("is revoked").wait_for()
    shot(page, "keys-revoked")
    response = requests.get(api, headers=headers, timeout=10)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_member_cannot_see_billing(live_server, tenant, make_member, new_page, shot):
    member = make_member(tenant, "member", "mia@acme.test")
    page = new_page()
    browser_login(page, member.email)
    nav = page.locator("nav.nav")
    assert nav.get_by_role("link", name="Transcriptions").is_visible()
    assert nav.get_by_role("link", name="Billing").count() == 0
    assert nav.get_by_role("link", name="API keys").count() == 0
    response = page.goto("/app/billing/")
    assert response.status == 403
    assert page.get_by_role("heading", name="Not allowed").is_visible()
    shot(page, "member-billing-forbidden")


def test_another_tenants_job_url_is_a_404(live_server, tenant, other_tenant, owner, make_job, new_page, shot):
    foreign = make_job(other_tenant, text="globex board minutes", filename="globex.wav")
    ours = make_job(tenant, filename="acme.wav")
    page = new_page()
    browser_login(page, owner.email)
    assert page.goto(f"/app/transcriptions/{ours.pk}/").status == 200
    response = page.goto(f"/app/transcriptions/{foreign.pk}/")
    assert response.status == 404
    assert "globex" not in page.content()
    assert page.goto(f"/app/transcriptions/{foreign.pk}/download/srt/").status == 404
    shot(page, "foreign-job-404")


def test_screenshots_of_the_other_pages(live_server, tenant, owner, make_member, make_job, grant, new_page, shot):
    from django.utils import timezone

    from billing.models import TokenPack, TokenPackPrice

    grant(tenant, 120_000)
    # Transactional tests flush the seeded packs; put two back for the billing screenshot.
    for order, (code, name, tokens, usd, cny) in enumerate(
        [("starter", "Starter", 100_000, 900, 6500), ("team", "Team", 1_000_000, 7900, 56900)]
    ):
        pack, _ = TokenPack.objects.get_or_create(
            code=code, defaults={"name": name, "tokens": tokens, "sort_order": order}
        )
        TokenPackPrice.objects.get_or_create(pack=pack, currency="usd", defaults={"unit_amount": usd})
        TokenPackPrice.objects.get_or_create(pack=pack, currency="cny", defaults={"unit_amount": cny})
    for i, name in enumerate(["lecture-week1.m4a", "call-0093.wav", "interview.mp3"]):
        make_job(
            tenant, filename=name, finished_at=timezone.now() - timezone.timedelta(days=i * 3), billed_tokens=12 + i
        )
    make_job(tenant, filename="running.wav", status="running", progress=0.35, tokens=None, billed_tokens=None, text="")
    make_member(tenant, "billing", "finance@acme.test")
    page = new_page()
    browser_login(page, owner.email)
    shot(page, "overview-with-usage")
    for path, name in [
        ("/app/billing/", "billing"),
        ("/app/members/", "members"),
        ("/app/hotwords/", "hotwords"),
        ("/app/transcriptions/", "transcriptions-running"),
        ("/accounts/2fa/", "mfa"),
    ]:
        page.goto(path)
        shot(page, name)
    page.goto("/app/")
    with page.expect_navigation():
        page.select_option("#language-switch", "zh-hans")
    assert page.locator("html").get_attribute("lang") == "zh-hans"
    shot(page, "overview-zh")
