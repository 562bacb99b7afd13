"""/app/live/: the dashboard's microphone page (a real Chromium with a fake audio capture file, against the
live server and a real stream worker) and its list of live sessions."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

from streaming.auth import AuthError, stream_ticket_create, ticket_authenticate
from tests.audio_samples import sentence, speak_fixture, write_wav
from tests.dashboard.conftest import CHROMIUM, CHROMIUM_ARGS, _verify, browser_login
from tests.factories import UserFactory

SR = 16000


def member(tenant, role="member", email="lin@acme.test"):
    from tenants.models import Membership

    user = UserFactory(username=email)
    Membership.objects.create(tenant=tenant, user=user, role=role)
    _verify(user)
    return user


@pytest.mark.django_db
def test_live_page_lists_only_this_tenants_sessions_and_gives_a_ticket(client, tenant, other_tenant, grant):
    from streaming import services
    from streaming.auth import Caller

    grant(tenant, 10_000)
    grant(other_tenant, 10_000)
    user = member(tenant)
    mine = services.stream_session_open(caller=Caller(tenant=tenant, user=user), protocol="funasr", mode="2pass")
    stranger = member(other_tenant, email="x@globex.test")
    services.stream_session_open(caller=Caller(tenant=other_tenant, user=stranger), protocol="funasr", mode="online")
    client.force_login(user)
    response = client.get("/app/live/")
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    html = response.content.decode()
    assert "lin@acme.test" in html and "x@globex.test" not in html
    ticket = re.search(r'data-ticket="([^"]+)"', html).group(1)
    assert ticket_authenticate(ticket).tenant == tenant
    services.stream_session_close(session_id=mine.pk, reason="completed")


@pytest.mark.django_db
def test_a_ticket_is_only_good_for_a_current_member(tenant):
    from tenants.models import Membership

    user = member(tenant)
    ticket = stream_ticket_create(tenant=tenant, user=user)
    assert ticket_authenticate(ticket).user == user
    with pytest.raises(AuthError):
        ticket_authenticate(ticket[:-2] + "xx")
    Membership.objects.filter(user=user).delete()
    with pytest.raises(AuthError):
        ticket_authenticate(ticket)


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_talking_into_the_microphone_shows_partials_and_finals(
    live_server, stream_worker, tenant, grant, settings, tmp_path
):
    from playwright.sync_api import sync_playwright

    from streaming.models import StreamSession
    from tests.conftest import wait_for

    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's loop runs in this thread
    settings.STREAM_PUBLIC_URL = stream_worker.url
    grant(tenant, 10_000)
    member(tenant)
    spoken = speak_fixture("zh_park")
    silence = np.zeros(SR, dtype=np.float32)
    wav = write_wav(tmp_path / "mic.wav", np.concatenate([silence, spoken, silence, silence, silence]))
    args = [*CHROMIUM_ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav}"]  # fmt: skip
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        try:
            context = browser.new_context(base_url=live_server.url, locale="en-US")
            context.set_default_timeout(20_000)
            page = context.new_page()
            browser_login(page, "lin@acme.test")
            page.goto("/app/live/")
            page.get_by_role("button", name="Start").click()
            page.locator("#live-status", has_text="Listening").wait_for()
            first = page.locator("[data-testid=live-finals] li").first
            first.wait_for(timeout=60_000)
            assert sentence("zh_park")["text"][:4] in first.inner_text(), stream_worker.log()[-2000:]
            page.get_by_role("button", name="Stop").click()
            session = wait_for(
                lambda: StreamSession.objects.filter(tenant=tenant, status="closed").first(), timeout=30,
                message="the browser's session closed",
            )  # fmt: skip
            assert session.started_by.email == "lin@acme.test" and session.tokens > 0
            page.goto("/app/live/")
            assert page.locator("[data-testid=live-sessions] tbody tr").count() == 1
        finally:
            browser.close()
