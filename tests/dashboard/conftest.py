"""Dashboard fixtures: users in each role of the `tenant` fixture, signed-in clients, jobs."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import pytest
from django.test import Client

from tenants.models import Membership
from tests.factories import UserFactory

PASSWORD = "correct-horse-battery"
ROLES = ("owner", "admin", "member", "billing")


@pytest.fixture(autouse=True)
def _clear_cache():
    """allauth rate limits (e.g. one confirmation email per address per 3 minutes) live in the cache."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def make_member():
    """make_member(tenant, role, email=None) -> user with a membership of `role` in `tenant`."""

    def _make(tenant, role: str, email: str | None = None):
        user = UserFactory(username=email or f"{role}-{uuid.uuid4().hex[:6]}@example.com")
        Membership.objects.create(tenant=tenant, user=user, role=role)
        _verify(user)
        return user

    return _make


def _verify(user) -> None:
    from allauth.account.models import EmailAddress

    EmailAddress.objects.update_or_create(user=user, email=user.email, defaults={"verified": True, "primary": True})


@pytest.fixture
def login():
    """login(user) -> a Django test client signed in as `user`."""

    def _login(user) -> Client:
        client = Client()
        client.force_login(user)
        return client

    return _login


@pytest.fixture
def owner(tenant, make_member):
    return make_member(tenant, "owner", "owner@acme.test")


@pytest.fixture
def owner_client(owner, login):
    return login(owner)


@pytest.fixture
def make_job():
    """make_job(tenant, **fields) -> a Transcription row (default: succeeded with two segments)."""
    from transcription.models import Transcription

    def _make(tenant, **fields):
        defaults = {
            "status": "succeeded",
            "filename": "meeting.wav",
            "sha256": hashlib.sha256(uuid.uuid4().bytes).hexdigest(),
            "duration_s": 4.2,
            "probed_duration_s": 4.2,
            "language": "zh",
            "text": "欢迎使用我们的转写服务 hello world",
            "segments": [
                {"start": 0.0, "end": 2.0, "text": "欢迎使用我们的转写服务"},
                {"start": 2.0, "end": 4.2, "text": "hello world"},
            ],
            "held_tokens": 34,
            "tokens": 12,
            "billed_tokens": 12,
            "token_rule": "v1",
            "progress": 1.0,
            "source": "dashboard",
        }
        defaults.update(fields)
        return Transcription.objects.create(tenant=tenant, **defaults)

    return _make


# --- browser (Playwright driving Debian's chromium) ------------------------------------------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"


@pytest.fixture
def browser(live_server):
    """A headless chromium (never `playwright install`: the Makefile installs Debian's chromium)."""
    # Playwright's sync API runs an event loop in this thread; the test code still talks to the
    # test database directly (fixtures, assertions), which Django would otherwise refuse.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make system-deps` (apt-get install chromium).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def new_page(browser, live_server):
    """new_page(**context options) -> a page in a fresh browser context (own cookies) on the live server."""
    contexts = []

    def _new(**options):
        options = {"locale": "en-US", "timezone_id": "Asia/Shanghai", "accept_downloads": True, **options}
        context = browser.new_context(base_url=live_server.url, **options)
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context.new_page()

    yield _new
    for context in contexts:
        context.close()


@pytest.fixture
def shot():
    """shot(page, name): save a full-page screenshot under test-output/screenshots/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def _shot(page, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return _shot


def browser_login(page, email: str, password: str = PASSWORD) -> None:
    page.goto("/accounts/login/")
    page.fill("#id_login", email)
    page.fill("#id_password", password)
    page.locator("main form button[type=submit]").first.click()
    page.wait_for_url("**/app/")


def api_probe_path() -> str:
    """GET /api/v1/balance (billing API); /api/v1/usage until that endpoint is routed."""
    from django.urls import Resolver404, resolve

    try:
        resolve("/api/v1/balance")
    except Resolver404:
        return "/api/v1/usage"
    return "/api/v1/balance"
