"""The stream worker speaks FunASR's runtime protocol the way the stock clients do (a real uvicorn process).

The clients below are written from the protocol as funasr_wss_client.py, the HTML5 client and Xiaozhi's
fun_server provider speak it (the `websockets` library they use, their headers, subprotocol and messages).
"""

from __future__ import annotations

import asyncio
import json
import re
import time

import numpy as np
import pytest
import websockets

from tests.audio_samples import sentence, speak_fixture
from tests.conftest import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SR = 16000


def pcm16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


@pytest.fixture(scope="module")
def park_audio() -> np.ndarray:
    return speak_fixture("zh_park")


@pytest.fixture
def funded(tenant, api_key, grant):
    grant(tenant, 10_000)
    return api_key[1]


def xiaozhi_config(name: str) -> str:
    return json.dumps(
        {"mode": "offline", "chunk_size": [5, 10, 5], "chunk_interval": 10, "wav_name": name, "is_speaking": True,
         "itn": False}
    )  # fmt: skip


async def xiaozhi_recognize(url: str, key: str, pcm: bytes, name: str = "xz-1") -> tuple[list[dict], float]:
    """Xiaozhi's fun_server: one connection per utterance, the whole PCM in one frame, until is_final."""
    messages = []
    async with websockets.connect(
        url, additional_headers={"Authorization": f"Bearer; {key}"}, subprotocols=["binary"], ping_interval=None
    ) as ws:
        assert ws.subprotocol == "binary"
        started = time.monotonic()
        await ws.send(xiaozhi_config(name))
        await ws.send(pcm)
        await ws.send(json.dumps({"is_speaking": False}))
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), timeout=5))
            messages.append(message)
            if message.get("is_final", True):
                return messages, time.monotonic() - started


def stream_row(**filters):
    from streaming.models import StreamSession

    return StreamSession.objects.filter(**filters).order_by("-started_at").first()


def assert_stream_money(tenant) -> None:
    """Ledger sums = balance; held = open stream holds; one debit per session, equal to its billed tokens."""
    from django.db.models import Sum

    from billing.models import LedgerEntry
    from streaming.models import StreamSession
    from tests.conftest import assert_ledger_consistent

    assert_ledger_consistent(tenant)
    for session in StreamSession.objects.filter(tenant=tenant, status="closed"):
        debits = LedgerEntry.objects.filter(stream_session=session, kind="debit")
        assert debits.count() == (1 if session.billed_tokens else 0)
        assert (debits.aggregate(s=Sum("held_delta"))["s"] or 0) == -session.billed_tokens
        assert session.billed_tokens <= session.tokens
        holds = LedgerEntry.objects.filter(stream_session=session, kind__in=["hold", "hold_extend"])
        assert session.billed_tokens <= (holds.aggregate(s=Sum("held_delta"))["s"] or 0)


def test_offline_the_xiaozhi_way(stream_worker, tenant, funded, park_audio):
    messages, elapsed = asyncio.run(xiaozhi_recognize(stream_worker.url, funded, pcm16(park_audio)))
    expected = sentence("zh_park")["text"]
    stamps = json.loads(messages[0].pop("timestamp"))  # the model's word times, as FunASR's servers send them
    assert messages == [{"mode": "offline", "text": expected, "wav_name": "xz-1", "is_final": True}]
    assert stamps and all(0 <= a <= b <= park_audio.shape[0] / SR * 1000 for a, b in stamps)
    print(f"offline result {elapsed * 1000:.0f} ms after the config")
    row = wait_for(lambda: stream_row(tenant=tenant, status="closed"), timeout=10, message="session closed")
    assert (row.mode, row.close_reason, row.tokens, row.billed_tokens, row.finals) == (
        "offline", "completed", len(expected), len(expected), 1
    )  # fmt: skip
    assert row.audio_seconds == pytest.approx(park_audio.shape[0] / SR, abs=0.01)
    assert_stream_money(tenant)


async def realtime_2pass(url: str, key: str, audio: np.ndarray) -> list[tuple[float, dict]]:
    """funasr_wss_client.py in 2pass mode: 60 ms frames at real-time pace, then is_speaking false + is_end."""
    received: list[tuple[float, dict]] = []
    async with websockets.connect(f"{url}/?api_key={key}", subprotocols=["binary"], ping_interval=None) as ws:
        config = {"mode": "2pass", "chunk_size": [5, 10, 5], "chunk_interval": 10, "encoder_chunk_look_back": 4,
                  "decoder_chunk_look_back": 0, "audio_fs": 16000, "wav_name": "rt", "wav_format": "pcm",
                  "is_speaking": True, "hotwords": json.dumps({"公园": 20}), "itn": True}  # fmt: skip
        await ws.send(json.dumps(config))
        t0 = time.monotonic()

        async def listen():
            async for raw in ws:
                message = json.loads(raw)
                received.append((time.monotonic() - t0, message))
                if message.get("is_end"):
                    return

        listener = asyncio.create_task(listen())
        data = pcm16(audio)
        stride = 1920  # 60 ms
        for i, beg in enumerate(range(0, len(data), stride)):
            await asyncio.sleep(max(0.0, t0 + i * 0.06 - time.monotonic()))
            await ws.send(data[beg : beg + stride])
        await ws.send(json.dumps({"is_speaking": False, "is_end": True}))
        await asyncio.wait_for(listener, timeout=15)
    return received


def test_2pass_realtime_partials_then_finals(stream_worker, tenant, funded, park_audio):
    silence = np.zeros(SR, dtype=np.float32)
    audio = np.concatenate([silence, park_audio, silence, silence])
    received = asyncio.run(realtime_2pass(stream_worker.url, funded, audio))
    modes = [m["mode"] for _, m in received]
    assert "2pass-online" in modes
    first_final = modes.index("2pass-offline")
    assert "2pass-online" in modes[:first_final]  # partials come first
    finals = [(t, m) for t, m in received if m["mode"] == "2pass-offline"]
    assert all(m["is_final"] for _, m in finals)
    assert all(not m["is_final"] for _, m in received if m["mode"] == "2pass-online")
    worded = [m["text"] for _, m in finals if m["text"]]
    assert worded and sentence("zh_park")["text"][:4] in worded[0]
    stamps = json.loads(next(m for _, m in finals if m["text"])["timestamp"])
    assert 800 <= stamps[0][0] and stamps[-1][1] <= (SR + park_audio.shape[0]) / SR * 1000 + 100  # session time
    speech_end = (SR + park_audio.shape[0]) / SR
    print(f"end of speech -> final: {(finals[0][0] - speech_end) * 1000:.0f} ms")
    assert received[-1][1] == {"mode": "2pass", "wav_name": "rt", "is_final": True, "is_end": True}
    assert all(m["wav_name"] == "rt" for _, m in received)
    # it asked for hotwords, which SenseVoice cannot use: told once, on its first result, not dropped silently
    warned = [i for i, (_, m) in enumerate(received) if "warning" in m]
    assert warned == [0] and received[0][1]["warning"].startswith("hotwords_ignored: ")
    row = wait_for(lambda: stream_row(tenant=tenant, status="closed"), timeout=10, message="session closed")
    assert row.close_reason == "completed" and row.tokens == sum(len(t.replace(" ", "")) for t in worded)
    assert_stream_money(tenant)


async def offline_in_frames(url: str, key: str, pcm: bytes, frame: int, audio_fs: int = 16000, **extra) -> list[dict]:
    """The Python client in offline mode: frames of any size, then is_speaking false + is_end, until is_end."""
    messages = []
    async with websockets.connect(f"{url}?api_key={key}", ping_interval=None) as ws:
        config = {"mode": "offline", "wav_name": "f", "audio_fs": audio_fs, "is_speaking": True, **extra}
        await ws.send(json.dumps(config))
        for beg in range(0, len(pcm), frame):
            await ws.send(pcm[beg : beg + frame])
        await ws.send(json.dumps({"is_speaking": False, "is_end": True}))
        while not messages or not messages[-1].get("is_end"):
            messages.append(json.loads(await asyncio.wait_for(ws.recv(), timeout=15)))
    return messages


def test_odd_sized_frames_carry_their_last_byte(stream_worker, tenant, funded, park_audio):
    messages = asyncio.run(offline_in_frames(stream_worker.url, funded, pcm16(park_audio), frame=997))
    assert messages[0].pop("timestamp")
    assert messages[0] == {"mode": "offline", "text": sentence("zh_park")["text"], "wav_name": "f", "is_final": True}
    assert messages[1] == {"mode": "offline", "wav_name": "f", "is_final": True, "is_end": True}
    assert len(messages) == 2


def test_offline_hotwords_sensevoice_cannot_use_are_reported_on_the_result(stream_worker, tenant, funded, park_audio):
    messages = asyncio.run(
        offline_in_frames(stream_worker.url, funded, pcm16(park_audio), frame=32000, hotwords="公园 散步")
    )
    assert messages[0]["text"] == sentence("zh_park")["text"] and messages[0]["is_final"] is True
    assert messages[0]["warning"].startswith("hotwords_ignored: ")
    assert messages[1] == {"mode": "offline", "wav_name": "f", "is_final": True, "is_end": True}


def test_8khz_audio_is_resampled(stream_worker, tenant, funded, park_audio):
    import soxr

    narrow = soxr.resample(park_audio, SR, 8000)
    messages = asyncio.run(offline_in_frames(stream_worker.url, funded, pcm16(narrow), frame=3200, audio_fs=8000))
    assert [m.get("is_final") for m in messages] == [True, True] and "error" not in messages[0]
    row = wait_for(lambda: stream_row(tenant=tenant, status="closed"), timeout=10, message="session closed")
    assert row.audio_seconds == pytest.approx(park_audio.shape[0] / SR, abs=0.05)
    assert_stream_money(tenant)


def test_the_worker_freezes_its_models_once_loaded(stream_worker):
    """A full garbage collection walking the models would stall every live stream (portal.gc_freeze)."""
    frozen = re.findall(r"Streaming models loaded; (\d+) objects frozen", stream_worker.log())
    assert len(frozen) == 1 and int(frozen[0]) > 100_000, stream_worker.log()[-2000:]
