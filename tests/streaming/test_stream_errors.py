"""Every way a stream can go wrong ends cleanly: a clear answer, a clear close, the money settled."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.conftest import wait_for
from tests.streaming.test_funasr_ws import assert_stream_money, stream_row, xiaozhi_config

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SR = 16000


@pytest.fixture
def funded(tenant, api_key, grant):
    grant(tenant, 10_000)
    return api_key[1]


def connect(url: str, key: str | None, **kwargs):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return websockets.connect(url, additional_headers=headers, subprotocols=["binary"], ping_interval=None, **kwargs)


async def until_closed(ws) -> tuple[list[dict], int, str]:
    """Every message until the server closes; (messages, close code, close reason)."""
    messages = []
    try:
        while True:
            messages.append(json.loads(await asyncio.wait_for(ws.recv(), timeout=20)))
    except ConnectionClosed:
        pass
    return messages, ws.close_code, ws.close_reason


def active_stream_sessions() -> float:
    """tingxie_stream_sessions_active as /metrics reports it (the stream worker's files, read here)."""
    from prometheus_client.parser import text_string_to_metric_families

    from portal.metrics import render

    for family in text_string_to_metric_families(render()[0].decode()):
        if family.name == "tingxie_stream_sessions_active":
            return sum(sample.value for sample in family.samples)
    return 0.0


def silence(seconds: float) -> bytes:
    return np.zeros(int(SR * seconds), dtype="<i2").tobytes()


@pytest.mark.parametrize("header", ["Bearer nope.nope", "Bearer; ", "Token abc", None])
def test_bad_key_is_refused_at_the_handshake(stream_worker, header):
    async def go():
        headers = {"Authorization": header} if header else {}
        with pytest.raises(InvalidStatus) as refused:
            async with websockets.connect(stream_worker.url, additional_headers=headers, subprotocols=["binary"]):
                pass
        response = refused.value.response
        assert response.status_code == 401
        assert json.loads(response.body)["error"]["code"] == "invalid_api_key"

    asyncio.run(go())


def test_revoked_key_is_refused(stream_worker, tenant, api_key):
    from tenants.services import api_key_revoke

    api_key_revoke(key=api_key[0])

    async def go():
        with pytest.raises(InvalidStatus) as refused:
            async with connect(stream_worker.url, api_key[1]):
                pass
        assert refused.value.response.status_code == 401

    asyncio.run(go())


def test_zero_balance_says_so_and_closes(stream_worker, tenant, api_key):
    async def go():
        async with connect(stream_worker.url, api_key[1]) as ws:
            await ws.send(xiaozhi_config("broke"))
            return await until_closed(ws)

    messages, code, reason = asyncio.run(go())
    assert len(messages) == 1 and messages[0]["error"].startswith("insufficient_balance")
    assert (messages[0]["mode"], messages[0]["wav_name"], messages[0]["is_final"]) == ("offline", "broke", False)
    assert code == 1008 and reason.startswith("insufficient_balance")
    row = stream_row(tenant=tenant)
    assert (row.status, row.close_reason, row.billed_tokens) == ("closed", "insufficient_balance", 0)
    from billing.models import LedgerEntry

    assert not LedgerEntry.objects.filter(tenant=tenant).exists()


@pytest.mark.parametrize(
    ("first", "code", "why"),
    [
        (b"\x00\x01" * 100, 1008, "bad_request"),  # binary before the config
        ("{not json", 1008, "bad_request"),
        (json.dumps({"mode": "3pass"}), 1008, "bad_request"),
        (json.dumps({"mode": "online", "audio_fs": 44100}), 1008, "bad_request"),
    ],
)
def test_protocol_errors_end_cleanly(stream_worker, tenant, funded, first, code, why):
    async def go():
        async with connect(stream_worker.url, funded) as ws:
            await ws.send(first)
            return await until_closed(ws)

    messages, close_code, reason = asyncio.run(go())
    assert close_code == code and reason.startswith(why)
    assert messages and messages[-1]["error"].startswith(why)
    assert stream_row(tenant=tenant) is None  # nothing opened, nothing held


def test_garbage_after_config_closes_and_settles(stream_worker, tenant, funded):
    async def go():
        async with connect(stream_worker.url, funded) as ws:
            await ws.send(json.dumps({"mode": "2pass", "wav_name": "g"}))
            await ws.send(silence(0.5))
            await ws.send("]]garbage")
            return await until_closed(ws)

    messages, code, _reason = asyncio.run(go())
    assert code == 1008 and messages[-1]["error"].startswith("bad_request")
    row = wait_for(lambda: stream_row(tenant=tenant, status="closed"), timeout=10, message="closed")
    assert row.close_reason == "bad_request" and row.held_tokens == 0
    assert_stream_money(tenant)


def test_oversized_frame_is_refused(stream_worker, tenant, funded):
    async def go():
        async with connect(stream_worker.url, funded, max_size=None) as ws:
            await ws.send(xiaozhi_config("big"))
            await ws.send(silence(16))  # over the test worker's 15 s frame limit
            return await until_closed(ws)

    messages, code, reason = asyncio.run(go())
    assert code == 1009 and reason.startswith("frame_too_large")
    assert messages[-1]["error"].startswith("frame_too_large")
    row = wait_for(lambda: stream_row(tenant=tenant, status="closed"), timeout=10, message="closed")
    assert row.close_reason == "frame_too_large"
    assert_stream_money(tenant)


def test_audio_faster_than_twice_real_time_is_refused(stream_worker, tenant, funded):
    async def go():
        async with connect(stream_worker.url, funded) as ws:
            await ws.send(json.dumps({"mode": "online", "wav_name": "fast"}))
            for _ in range(40):  # 40 s of audio at once: past the 20 s burst of the test worker
                await ws.send(silence(1))
            return await until_closed(ws)

    messages, code, reason = asyncio.run(go())
    assert code == 1008 and reason.startswith("too_fast")
    row = wait_for(lambda: stream_row(tenant=tenant, status="closed"), timeout=20, message="closed")
    assert row.close_reason == "too_fast"
    assert_stream_money(tenant)


def test_a_client_that_vanishes_mid_stream(stream_worker, tenant, funded):
    async def go():
        ws = await connect(stream_worker.url, funded)
        await ws.send(json.dumps({"mode": "2pass", "wav_name": "gone"}))
        for _ in range(5):
            await ws.send(silence(0.06))
        await asyncio.sleep(0.3)
        ws.transport.abort()  # no close frame: the network dropped

    asyncio.run(go())
    row = wait_for(lambda: stream_row(tenant=tenant, status="closed"), timeout=15, message="closed")
    assert (row.close_reason, row.held_tokens, row.billed_tokens) == ("client_gone", 0, 0)
    from billing.models import LedgerEntry

    kinds = list(LedgerEntry.objects.filter(stream_session=row).values_list("kind", flat=True))
    assert kinds == ["hold", "release"]
    assert_stream_money(tenant)


def test_admission_control_and_per_key_limit(stream_worker, tenant, funded, other_tenant, grant):
    """The test worker takes 3 streams, at most 2 per key: the 3rd of one key is refused (1008), and past 3
    the worker refuses with 1013 (try again later)."""
    from tenants.services import api_key_create

    grant(other_tenant, 10_000)
    other_key = api_key_create(tenant=other_tenant, name="b")[1]

    async def go():
        held = []
        for _ in range(2):
            ws = await connect(stream_worker.url, funded)
            await ws.send(json.dumps({"mode": "2pass"}))
            held.append(ws)
        await asyncio.sleep(0.5)  # both opened in the database
        third = await connect(stream_worker.url, funded)
        await third.send(json.dumps({"mode": "2pass"}))
        per_key = await until_closed(third)
        ws = await connect(stream_worker.url, other_key)
        await ws.send(json.dumps({"mode": "2pass"}))
        held.append(ws)
        full = await connect(stream_worker.url, other_key)
        server_full = await until_closed(full)
        wait_for(lambda: active_stream_sessions() == 3, timeout=10, message="3 sessions in the metrics gauge")
        for ws in held:
            await ws.close()
        return per_key, server_full

    per_key, server_full = asyncio.run(go())
    assert per_key[1] == 1008 and per_key[2].startswith("too_many_streams")
    assert server_full[1] == 1013 and "try again later" in server_full[2]
    wait_for(
        lambda: not stream_row(tenant=tenant, status="open") and not stream_row(tenant=other_tenant, status="open"),
        timeout=15,
        message="all closed",
    )
    wait_for(lambda: active_stream_sessions() == 0, timeout=10, message="the gauge back at 0")
    assert_stream_money(tenant)
    assert_stream_money(other_tenant)
