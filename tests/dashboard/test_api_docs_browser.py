"""The API docs pages work offline: Swagger UI and ReDoc come from our own static files (chromium, every
request to another host refused, as on a machine without internet) and render the schema's operations."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# ReDoc's "powered by" image: refused offline, ReDoc hides it itself (its onError); nothing else may leave.
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


def offline_page(new_page, live_server):
    """A page whose requests to any other host are refused and recorded."""
    page = new_page()
    outside: list[str] = []
    own = urlsplit(live_server.url).netloc

    def only_ours(route):
        if urlsplit(route.request.url).netloc == own:
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort("internetdisconnected")

    page.route("**/*", only_ours)
    return page, outside


def test_swagger_ui_renders_the_operations_offline(new_page, live_server, shot):
    page, outside = offline_page(new_page, live_server)
    page.goto("/api/docs/", wait_until="commit")  # its scripts are big: wait for what they draw instead
    page.locator(".opblock").first.wait_for(state="attached", timeout=90_000)
    assert page.locator(".opblock").count() >= 20
    assert page.locator(".opblock-summary-path", has_text="/v1/audio/transcriptions").count() >= 1
    shot(page, "api-docs-swagger")
    assert outside == []


def test_redoc_renders_the_operations_offline(new_page, live_server, shot):
    page, outside = offline_page(new_page, live_server)
    page.goto("/api/redoc/", wait_until="commit")
    page.get_by_text("OpenAI-compatible transcription (answers when the job is done)").first.wait_for(
        state="attached", timeout=90_000
    )
    assert page.locator("[data-section-id^='operation/']").count() >= 20
    shot(page, "api-docs-redoc")
    assert set(outside) <= {REDOC_LOGO}
