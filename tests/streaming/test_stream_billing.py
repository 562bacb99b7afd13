"""Stream billing (services, no server): hold, extend, count, one settle; the streams API is tenant-scoped."""

from __future__ import annotations

import math
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from billing.models import BalanceAccount, LedgerEntry
from portal.errors import InsufficientBalance
from streaming import services
from streaming.auth import Caller
from streaming.models import StreamSession
from tests.conftest import assert_ledger_consistent

MINUTE = math.ceil(60 * 8.0)  # MAX_TOKENS_PER_SECOND default 8


def open_stream(api_key, mode="2pass"):
    caller = Caller(tenant=api_key.tenant, api_key=api_key)
    return services.stream_session_open(caller=caller, protocol="funasr", mode=mode, wav_name="w", model="m")


@pytest.mark.django_db
def test_open_extend_count_settle_is_one_debit(tenant, api_key, grant):
    grant(tenant, 2 * MINUTE + 10)
    session = open_stream(api_key[0])
    assert session.held_tokens == MINUTE and services.covered_seconds(session) == 60
    session = services.stream_session_extend(session_id=session.pk, model="m")
    assert session.held_tokens == 2 * MINUTE and services.covered_seconds(session) == 120
    with pytest.raises(InsufficientBalance):
        services.stream_session_extend(session_id=session.pk, model="m")  # 10 left: not a minute
    assert services.stream_session_count(session_id=session.pk, text="你好 world, don't", audio_seconds=3.5) == 4
    services.stream_session_count(session_id=session.pk, text="<|zh|>再见", audio_seconds=7.25)
    closed = services.stream_session_close(session_id=session.pk, reason="completed", audio_seconds=7.5)
    assert (closed.tokens, closed.billed_tokens, closed.held_tokens, closed.finals) == (6, 6, 0, 2)
    assert closed.audio_seconds == 7.5 and closed.status == "closed"
    kinds = list(
        LedgerEntry.objects.filter(stream_session=session).values_list("kind", "available_delta", "held_delta")
    )
    assert kinds == [
        ("hold", -MINUTE, MINUTE),
        ("hold_extend", -MINUTE, MINUTE),
        ("debit", 0, -6),
        ("release", 2 * MINUTE - 6, -(2 * MINUTE - 6)),
    ]
    assert services.stream_session_close(session_id=session.pk, reason="again").close_reason == "completed"
    assert LedgerEntry.objects.filter(stream_session=session).count() == 4  # idempotent
    assert BalanceAccount.objects.get(tenant=tenant).available == 2 * MINUTE + 10 - 6
    assert_ledger_consistent(tenant)


@pytest.mark.django_db
def test_never_more_than_held(tenant, api_key, grant):
    grant(tenant, MINUTE)
    session = open_stream(api_key[0])
    services.stream_session_count(session_id=session.pk, text="字" * (MINUTE + 50), audio_seconds=59)
    closed = services.stream_session_close(session_id=session.pk, reason="completed")
    assert (closed.tokens, closed.billed_tokens) == (MINUTE + 50, MINUTE)
    assert BalanceAccount.objects.get(tenant=tenant).available == 0
    assert_ledger_consistent(tenant)


@pytest.mark.django_db
def test_zero_balance_refuses_and_keeps_a_closed_row(tenant, api_key):
    with pytest.raises(InsufficientBalance) as refused:
        open_stream(api_key[0])
    row = StreamSession.objects.get(pk=refused.value.extra["stream_id"])
    assert (row.status, row.close_reason, row.held_tokens) == ("closed", "insufficient_balance", 0)
    assert not LedgerEntry.objects.filter(tenant=tenant).exists()


@pytest.mark.django_db
def test_per_key_limit(tenant, api_key, grant, settings):
    settings.STREAM_MAX_SESSIONS_PER_KEY = 2
    grant(tenant, 10 * MINUTE)
    first, _second = open_stream(api_key[0]), open_stream(api_key[0])
    with pytest.raises(services.TooManyStreams):
        open_stream(api_key[0])
    services.stream_session_close(session_id=first.pk, reason="completed")
    open_stream(api_key[0])  # a slot is free again


@pytest.mark.django_db
def test_sweeper_closes_streams_of_a_dead_worker(tenant, api_key, grant):
    grant(tenant, 2 * MINUTE)
    alive, dead = open_stream(api_key[0]), open_stream(api_key[0])
    services.stream_session_count(session_id=dead.pk, text="你好", audio_seconds=2)
    StreamSession.objects.filter(pk=dead.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    assert services.stream_sessions_sweep() == 1
    dead.refresh_from_db()
    alive.refresh_from_db()
    assert (dead.status, dead.close_reason, dead.billed_tokens) == ("closed", "worker_lost", 2)
    assert alive.status == "open"
    assert_ledger_consistent(tenant)


@pytest.mark.django_db(transaction=True)
def test_concurrent_opens_never_pass_the_per_key_limit(require_postgres, tenant, api_key, grant, settings):
    settings.STREAM_MAX_SESSIONS_PER_KEY = 3
    grant(tenant, 100 * MINUTE)
    results: list[str] = []
    barrier = threading.Barrier(8)

    def worker():
        try:
            barrier.wait()
            open_stream(api_key[0])
            results.append("ok")
        except services.TooManyStreams:
            results.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["ok"] * 3 + ["refused"] * 5
    assert StreamSession.objects.filter(api_key=api_key[0], status="open").count() == 3
    assert_ledger_consistent(tenant)


@pytest.mark.django_db
def test_streams_api_is_tenant_scoped(tenant, api_key, api_client, other_client, grant):
    grant(tenant, 2 * MINUTE)
    session = open_stream(api_key[0])
    services.stream_session_count(session_id=session.pk, text="你好", audio_seconds=2)
    services.stream_session_close(session_id=session.pk, reason="completed", audio_seconds=2.5)
    body = api_client.get("/api/v1/streams").json()
    assert body["count"] == 1
    item = body["results"][0]
    assert item["id"] == str(session.pk) and item["mode"] == "2pass" and item["close_reason"] == "completed"
    assert item["usage"] == {"tokens": 2, "billed_tokens": 2, "held_tokens": 0, "rule": "v1"}
    assert item["api_key_prefix"] == api_key[0].prefix and item["audio_seconds"] == 2.5
    assert api_client.get(f"/api/v1/streams/{session.pk}").json()["id"] == str(session.pk)
    assert api_client.get("/api/v1/streams?status=open").json()["count"] == 0
    assert other_client.get("/api/v1/streams").json()["count"] == 0
    missing = other_client.get(f"/api/v1/streams/{session.pk}")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    ledger = api_client.get("/api/v1/ledger").json()["results"]
    assert {e["stream_id"] for e in ledger if e["kind"] in ("hold", "debit", "release")} == {str(session.pk)}
    usage = api_client.get("/api/v1/usage").json()
    assert usage["totals"]["tokens"] == 2 and sum(d.get("streams", 0) for d in usage["days"]) == 1
