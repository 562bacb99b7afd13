"""OpenAI Realtime transcription on the stream worker, driven by the official `openai` SDK's realtime clients.

A real stream worker process (tests/streaming/conftest.py) with the tiny trained SenseVoice; every server event
is validated with the SDK's own pydantic types (strict `model_validate` of the raw JSON).
"""

from __future__ import annotations

import asyncio
import base64
import json

import numpy as np
import pytest
import soxr
import websockets
from openai import OpenAI
from openai.types.beta.realtime import transcription_session_update
from openai.types.realtime import (
    ConversationItemInputAudioTranscriptionCompletedEvent,
    ConversationItemInputAudioTranscriptionDeltaEvent,
    ConversationItemInputAudioTranscriptionFailedEvent,
    InputAudioBufferClearedEvent,
    InputAudioBufferCommittedEvent,
    InputAudioBufferSpeechStartedEvent,
    InputAudioBufferSpeechStoppedEvent,
    RealtimeErrorEvent,
    SessionCreatedEvent,
    SessionUpdatedEvent,
)

from tests.audio_samples import sentence, speak_fixture
from tests.conftest import wait_for
from tests.streaming.test_funasr_ws import assert_stream_money

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

TYPES = {
    "session.created": SessionCreatedEvent,
    "session.updated": SessionUpdatedEvent,
    "input_audio_buffer.speech_started": InputAudioBufferSpeechStartedEvent,
    "input_audio_buffer.speech_stopped": InputAudioBufferSpeechStoppedEvent,
    "input_audio_buffer.committed": InputAudioBufferCommittedEvent,
    "input_audio_buffer.cleared": InputAudioBufferClearedEvent,
    "conversation.item.input_audio_transcription.delta": ConversationItemInputAudioTranscriptionDeltaEvent,
    "conversation.item.input_audio_transcription.completed": ConversationItemInputAudioTranscriptionCompletedEvent,
    "conversation.item.input_audio_transcription.failed": ConversationItemInputAudioTranscriptionFailedEvent,
    "error": RealtimeErrorEvent,
}
PARK = sentence("zh_park")["text"]


@pytest.fixture(scope="module")
def park_24k() -> bytes:
    return park_pcm_24k()


def park_pcm_24k() -> bytes:
    """The fixture sentence between silences, as PCM16 at 24 kHz (what the protocol carries)."""
    audio = speak_fixture("zh_park")
    quiet = np.zeros(16000, dtype=np.float32)
    audio = soxr.resample(np.concatenate([quiet, audio, quiet, quiet]), 16000, 24000)
    return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()


@pytest.fixture
def funded(tenant, api_key, grant):
    grant(tenant, 10_000)
    return api_key[1]


def client(worker, key: str) -> OpenAI:
    return OpenAI(api_key=key, base_url=f"http://127.0.0.1:{worker.port}/v1", max_retries=0)


def recv(connection) -> dict:
    """The next event, raw, after the SDK's own type validates it (strictly, where the SDK types it)."""
    raw = json.loads(connection.recv_bytes())
    model = TYPES.get(raw["type"])
    assert model is not None, raw
    model.model_validate(raw, strict=True)
    return raw


def all_closed(tenant, count: int):
    """Wait until the tenant's `count` sessions are all closed (settled by the worker); the rows, oldest first."""
    from streaming.models import StreamSession

    def closed():
        rows = list(StreamSession.objects.filter(tenant=tenant).order_by("started_at"))
        return rows if len(rows) == count and all(r.status == "closed" for r in rows) else None

    return wait_for(closed, timeout=15, message=f"{count} sessions closed")


def chunks(pcm: bytes, size: int = 4800):  # 100 ms at 24 kHz
    for start in range(0, len(pcm), size):
        yield base64.b64encode(pcm[start : start + size]).decode()


def until(connection, kind: str, limit: int = 400) -> list[dict]:
    events = []
    for _ in range(limit):
        events.append(recv(connection))
        if events[-1]["type"] == kind:
            return events
    raise AssertionError(f"no {kind}: {[e['type'] for e in events]}")


def test_server_vad_with_the_sdk_realtime_client(stream_worker, tenant, funded, park_24k):
    with client(stream_worker, funded).realtime.connect(
        model="gpt-4o-transcribe", extra_query={"intent": "transcription"}
    ) as connection:
        created = recv(connection)
        assert created["type"] == "session.created" and created["session"]["type"] == "transcription"
        assert created["session"]["audio"]["input"]["turn_detection"]["type"] == "server_vad"
        connection.session.update(
            session={
                "type": "transcription",
                "audio": {
                    "input": {
                        "format": {"type": "audio/pcm", "rate": 24000},
                        "transcription": {"model": "gpt-4o-transcribe", "prompt": "公园"},
                        "turn_detection": {"type": "server_vad", "silence_duration_ms": 600},
                    }
                },
            }
        )
        updated = recv(connection)
        assert updated["type"] == "session.updated"
        assert updated["session"]["audio"]["input"]["turn_detection"]["silence_duration_ms"] == 600
        assert updated["session"]["audio"]["input"]["transcription"]["prompt"] == "公园"
        for audio in chunks(park_24k):
            connection.input_audio_buffer.append(audio=audio)
        events = until(connection, "conversation.item.input_audio_transcription.completed")
    kinds = [e["type"] for e in events]
    assert kinds[0] == "input_audio_buffer.speech_started"
    stopped = kinds.index("input_audio_buffer.speech_stopped")
    assert kinds[stopped + 1] == "input_audio_buffer.committed"
    assert "conversation.item.input_audio_transcription.delta" in kinds
    item = events[0]["item_id"]
    assert all(e.get("item_id", item) == item for e in events)
    assert 500 <= events[0]["audio_start_ms"] <= 1100 < events[stopped]["audio_end_ms"]
    completed = events[-1]
    assert PARK[:4] in completed["transcript"]
    tokens = len(completed["transcript"].replace(" ", ""))
    assert completed["usage"] == {"type": "tokens", "input_tokens": 0, "output_tokens": tokens, "total_tokens": tokens}
    [row] = all_closed(tenant, 1)
    assert (row.protocol, row.mode, row.finals, row.tokens, row.billed_tokens) == (
        "openai_realtime", "server_vad", 1, tokens, tokens
    )  # fmt: skip
    assert_stream_money(tenant)


def test_manual_commit_clear_and_bad_events(stream_worker, tenant, funded, park_24k):
    with client(stream_worker, funded).realtime.connect(extra_query={"intent": "transcription"}) as connection:
        recv(connection)
        connection.session.update(
            session={
                "type": "transcription",
                "audio": {"input": {"turn_detection": None}},
                "include": ["item.input_audio_transcription.logprobs"],
            }
        )
        session = recv(connection)["session"]
        assert session["audio"]["input"]["turn_detection"] is None
        assert session["include"] == []  # what is in effect: no logprobs here
        connection.input_audio_buffer.commit()  # nothing appended
        error = recv(connection)
        assert error["error"]["code"] == "input_audio_buffer_commit_empty"
        for raw in ("not json", json.dumps({"type": "response.create"}), json.dumps({"no": "type"})):
            connection.send_raw(raw)
            assert recv(connection)["type"] == "error"
        connection.send_raw(json.dumps({"type": "input_audio_buffer.append", "audio": "%%%", "event_id": "e1"}))
        error = recv(connection)["error"]
        assert (error["param"], error["event_id"], error["type"]) == ("audio", "e1", "invalid_request_error")
        connection.send_raw(
            json.dumps(
                {
                    "type": "session.update",
                    "session": {
                        "type": "transcription",
                        "audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}},
                    },
                }
            )  # fmt: skip
        )
        assert recv(connection)["error"]["param"] == "session.audio.input.format"
        connection.input_audio_buffer.append(audio=next(chunks(park_24k, 48000)))
        connection.input_audio_buffer.clear()
        assert recv(connection)["type"] == "input_audio_buffer.cleared"
        for audio in chunks(park_24k):
            connection.input_audio_buffer.append(audio=audio)
        connection.input_audio_buffer.commit()
        events = until(connection, "conversation.item.input_audio_transcription.completed")
    kinds = [e["type"] for e in events]
    assert kinds == [
        "input_audio_buffer.committed",
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.completed",
    ]
    assert events[1]["delta"] == events[2]["transcript"] and PARK[:4] in events[2]["transcript"]
    with client(stream_worker, funded).realtime.connect(extra_query={"intent": "transcription"}) as connection:
        recv(connection)
        connection.session.update(session={"type": "transcription", "audio": {"input": {"turn_detection": None}}})
        recv(connection)
        for audio in chunks(bytes(24000 * 2 * 13), 48000):  # 13 s uncommitted: over the worker's 12 s
            connection.input_audio_buffer.append(audio=audio)
        assert recv(connection)["error"]["code"] == "input_audio_buffer_full"  # once, not per append
        connection.input_audio_buffer.clear()
        assert recv(connection)["type"] == "input_audio_buffer.cleared"
    row, _ = all_closed(tenant, 2)  # the mode is the one it opened with
    assert (row.mode, row.finals, row.billed_tokens) == ("server_vad", 1, events[2]["usage"]["output_tokens"])
    assert_stream_money(tenant)


def test_beta_client_and_browser_subprotocol_auth(stream_worker, tenant, funded, park_24k):
    from openai.types.beta.realtime import TranscriptionSessionUpdatedEvent  # noqa: F401  (the beta event type)

    async def go():
        from openai import AsyncOpenAI

        # The beta client always derives wss:// from base_url; a plain-HTTP host sets websocket_base_url.
        beta = AsyncOpenAI(
            api_key=funded,
            base_url="http://127.0.0.1:1/v1",
            websocket_base_url=f"ws://127.0.0.1:{stream_worker.port}/v1",
        )
        async with beta.beta.realtime.connect(
            model="gpt-4o-transcribe", extra_query={"intent": "transcription"}
        ) as conn:
            first = json.loads(await conn.recv_bytes())
            assert first["type"] == "transcription_session.created"
            await conn.send(
                {
                    "type": "transcription_session.update",
                    "session": {
                        "input_audio_format": "pcm16",
                        "input_audio_transcription": {"model": "gpt-4o-transcribe"},
                        "turn_detection": None,
                    },
                }  # fmt: skip
            )
            updated = json.loads(await conn.recv_bytes())
            assert updated["type"] == "transcription_session.updated"
            transcription_session_update.Session.model_validate(updated["session"])
            assert updated["session"]["turn_detection"] is None
            for audio in chunks(park_24k):
                await conn.input_audio_buffer.append(audio=audio)
            await conn.input_audio_buffer.commit()
            seen = []
            while not seen or seen[-1]["type"] != "conversation.item.input_audio_transcription.completed":
                seen.append(json.loads(await asyncio.wait_for(conn.recv_bytes(), timeout=30)))
            assert PARK[:4] in seen[-1]["transcript"]

        # openai-node in a browser: the key as a subprotocol, `realtime` echoed
        url = f"ws://127.0.0.1:{stream_worker.port}/v1/realtime?intent=transcription"
        async with websockets.connect(url, subprotocols=["realtime", f"openai-insecure-api-key.{funded}"]) as ws:
            assert ws.subprotocol == "realtime"
            assert json.loads(await ws.recv())["type"] == "session.created"

    asyncio.run(go())
    beta, browser = all_closed(tenant, 2)
    assert (beta.protocol, beta.finals, browser.finals) == ("openai_realtime", 1, 0)
    assert_stream_money(tenant)


def test_bad_key_refused_and_empty_balance_is_an_error_then_close(stream_worker, tenant, api_key):
    from openai import AuthenticationError, OpenAIError

    with pytest.raises((AuthenticationError, OpenAIError, websockets.exceptions.InvalidStatus)) as refused:
        with client(stream_worker, "nope.nope").realtime.connect(extra_query={"intent": "transcription"}) as connection:
            connection.recv()
    assert "401" in str(refused.value) or getattr(refused.value, "status_code", 0) == 401

    with client(stream_worker, api_key[1]).realtime.connect(extra_query={"intent": "transcription"}) as connection:
        error = recv(connection)
        assert error["error"]["code"] == "insufficient_balance"
        with pytest.raises(websockets.exceptions.ConnectionClosed):
            connection.recv_bytes()
    [refused] = all_closed(tenant, 1)
    assert (refused.close_reason, refused.held_tokens, refused.billed_tokens) == ("insufficient_balance", 0, 0)


# --- through the web tier: OpenAI(base_url="http://HOST:PORT/v1") alone -------------------------------------


def test_the_web_tier_relays_realtime_to_the_stream_worker(stream_worker, tenant, funded, park_24k, tmp_path):
    from openai import AuthenticationError

    from tests.transcription.test_async_wait import Uvicorn

    web = Uvicorn(tmp_path / "media", extra_env={"STREAM_URL": f"ws://127.0.0.1:{stream_worker.port}"})
    try:
        sdk = OpenAI(api_key=funded, base_url=f"{web.url}/v1", max_retries=0)
        with sdk.realtime.connect(model="gpt-4o-transcribe", extra_query={"intent": "transcription"}) as connection:
            assert recv(connection)["type"] == "session.created"
            for audio in chunks(park_24k):
                connection.input_audio_buffer.append(audio=audio)
            events = until(connection, "conversation.item.input_audio_transcription.completed")
        assert "input_audio_buffer.speech_started" in [e["type"] for e in events]
        assert PARK[:4] in events[-1]["transcript"]
        [row] = all_closed(tenant, 1)
        assert row.protocol == "openai_realtime" and row.billed_tokens == events[-1]["usage"]["total_tokens"] > 0
        assert_stream_money(tenant)

        bad = OpenAI(api_key="nope.nope", base_url=f"{web.url}/v1", max_retries=0)
        with pytest.raises((AuthenticationError, websockets.exceptions.InvalidStatus)) as refused:
            with bad.realtime.connect(extra_query={"intent": "transcription"}) as connection:
                connection.recv()
        assert "401" in str(refused.value) or getattr(refused.value, "status_code", 0) == 401

        async def browser_and_stray_path():
            url = f"ws://127.0.0.1:{web.port}/v1/realtime?intent=transcription"
            async with websockets.connect(url, subprotocols=["realtime", f"openai-insecure-api-key.{funded}"]) as ws:
                assert ws.subprotocol == "realtime"
                assert json.loads(await ws.recv())["type"] == "session.created"
                await ws.send("{oops")
                assert json.loads(await ws.recv())["error"]["code"] == "invalid_json"
            with pytest.raises(websockets.exceptions.InvalidStatus) as stray:
                async with websockets.connect(f"ws://127.0.0.1:{web.port}/elsewhere"):
                    pass
            assert stray.value.response.status_code == 404

        asyncio.run(browser_and_stray_path())
        all_closed(tenant, 2)
    finally:
        web.stop()
