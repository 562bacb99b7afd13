"""The web tier's fixed cost per request (issue 13): pooled PostgreSQL connections in web processes, one Redis
pool per process, and Django's middlewares running in the event loop under ASGI without changing behaviour."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from asgiref.sync import SyncToAsync, async_to_sync
from django.core.cache.backends.redis import RedisCache
from django.test import AsyncClient

from tests.conftest import ROOT
from tests.factories import UserFactory

SHOW_DB = (
    "import json, sys; sys.argv = ['x'];{setup}"
    "from django.conf import settings; db = settings.DATABASES['default'];"
    "print(json.dumps({{'pool': db.get('OPTIONS', {{}}).get('pool'), 'age': db.get('CONN_MAX_AGE')}}))"
)


def settings_of(setup: str, **env) -> dict:
    environment = {k: v for k, v in os.environ.items() if k not in ("DB_POOL", "TINGXIE_PROCESS")}
    environment.update(
        DJANGO_SETTINGS_MODULE="portal.settings.test", DATABASE_URL="postgres://u@127.0.0.1:5432/x", **env
    )
    result = subprocess.run(
        [sys.executable, "-c", SHOW_DB.format(setup=setup)],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_web_processes_pool_their_postgres_connections_and_others_do_not():
    web = settings_of("import portal.asgi;")
    assert web["pool"] and web["pool"]["max_size"] >= 1 and web["age"] == 0
    assert settings_of("import django; django.setup();")["pool"] is None  # workers fork: never a pool there
    assert settings_of("import portal.asgi;", DB_POOL="false")["pool"] is None


def test_a_cluster_keeps_its_connection_between_tasks(monkeypatch):
    from types import SimpleNamespace

    from portal.management.commands import qcluster

    postgres = {"ENGINE": "django.db.backends.postgresql", "CONN_MAX_AGE": 0}
    monkeypatch.setattr(qcluster, "settings", SimpleNamespace(DATABASES={"default": postgres}, Q_DB_CONN_MAX_AGE=321))
    qcluster._keep_connections()
    assert postgres["CONN_MAX_AGE"] == 321
    pooled = {"ENGINE": "django.db.backends.postgresql", "CONN_MAX_AGE": 0, "OPTIONS": {"pool": {"max_size": 4}}}
    monkeypatch.setattr(qcluster, "settings", SimpleNamespace(DATABASES={"default": pooled}, Q_DB_CONN_MAX_AGE=321))
    qcluster._keep_connections()
    assert pooled["CONN_MAX_AGE"] == 0  # a pool is never combined with kept connections


def test_cache_objects_and_brokers_share_one_redis_pool_per_process(monkeypatch):
    from django_q.conf import Conf

    from portal.redis_pools import PooledRedisBroker, SharedConnectionPool

    url = "redis://127.0.0.1:6399/7"  # never connected: pools connect on first use
    options = {"OPTIONS": {"pool_class": "portal.redis_pools.SharedConnectionPool"}}
    first, second = RedisCache(url, options), RedisCache(url, options)  # what two requests under ASGI get
    pool = first._cache._get_connection_pool(write=True)
    assert isinstance(pool, SharedConnectionPool)
    assert second._cache._get_connection_pool(write=True) is pool
    assert RedisCache("redis://127.0.0.1:6399/8", options)._cache._get_connection_pool(write=True) is not pool
    monkeypatch.setattr(Conf, "REDIS", url)
    brokers = [PooledRedisBroker(list_key="asr"), PooledRedisBroker(list_key="default")]
    assert brokers[0].connection.connection_pool is brokers[1].connection.connection_pool
    assert brokers[0].list_key == "django_q:asr:q"


def _count_hops(monkeypatch) -> list[str]:
    hops: list[str] = []
    original = SyncToAsync.__call__

    async def counting(self, *args, **kwargs):
        hops.append(getattr(self.func, "__qualname__", repr(self.func)))
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "__call__", counting)
    return hops


@pytest.mark.django_db(transaction=True)
def test_an_api_read_under_asgi_takes_few_thread_hops(api_key, monkeypatch):
    hops = _count_hops(monkeypatch)
    response = async_to_sync(AsyncClient().get)(
        "/api/v1/transcriptions", headers={"Authorization": f"Bearer {api_key[1]}"}
    )
    assert response.status_code == 200, response.content
    # The request signals (connections, caches) and the view: not one per middleware hook (there were 19).
    assert len(hops) <= 4, hops
    # Django's middlewares still did their work in the event loop.
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Length"] == str(len(response.content))
    assert response["X-Request-ID"]


@pytest.mark.django_db(transaction=True)
def test_a_dashboard_sign_in_under_asgi_saves_its_session(tenant):
    from allauth.account.models import EmailAddress

    from tenants.models import Membership

    user = UserFactory(username="asgi@example.com", email="asgi@example.com")
    Membership.objects.create(tenant=tenant, user=user, role="owner")
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    client = AsyncClient()
    assert async_to_sync(client.get)("/app/").status_code == 302  # anonymous: to the sign-in page
    response = async_to_sync(client.post)(
        "/accounts/login/", {"login": "asgi@example.com", "password": "correct-horse-battery"}
    )
    assert response.status_code == 302, response.content[:500]
    page = async_to_sync(client.get)("/app/")  # the session written in the response's thread is read back
    assert page.status_code == 200
    assert "Cookie" in page["Vary"]


def test_djangos_security_checks_still_see_the_inline_middlewares(settings):
    from portal.checks import check_security_with_inline_middlewares

    settings.SECURE_HSTS_SECONDS = 0  # HSTS off: Django's W004, which it skips when it sees no SecurityMiddleware
    ids = {m.id for m in check_security_with_inline_middlewares(None)}
    assert "security.W004" in ids and not ids & {"portal.W001", "portal.W002", "portal.W003"}
    settings.MIDDLEWARE = [p for p in settings.MIDDLEWARE if not p.endswith(".SecurityMiddleware")]
    assert "portal.W001" in {m.id for m in check_security_with_inline_middlewares(None)}
