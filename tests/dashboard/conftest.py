"""Dashboard fixtures: users in each role of the `tenant` fixture, signed-in clients, jobs."""

from __future__ import annotations

import hashlib
import uuid

import pytest
from django.test import Client

from tenants.models import Membership
from tests.factories import UserFactory

PASSWORD = "correct-horse-battery"
ROLES = ("owner", "admin", "member", "billing")


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
