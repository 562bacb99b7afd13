"""Speakers on FunASR-protocol streams: `diarize` / `speaker_ids` put spk_name and spk_score on each final."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
import websockets

from tests.audio_samples import has_tool, silence
from tests.speaker_samples import EASY_PAIR, TURN_SENTENCES, conversation
from tests.streaming.test_funasr_ws import pcm16

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not (has_tool("espeak-ng") and has_tool("sox")), reason="needs espeak-ng and sox"),
]
SR = 16000


def turns_audio(count: int = 4) -> tuple[list[np.ndarray], list[str]]:
    samples, turns = conversation(EASY_PAIR, TURN_SENTENCES[:count])
    clips = [np.concatenate([samples[int(t.start * SR) : int(t.end * SR)], silence(0.3)]) for t in turns]
    return clips, [t.speaker for t in turns]


async def offline_turns(url: str, key: str, clips: list[np.ndarray], **options) -> list[dict]:
    """The Python client in offline mode, one utterance per turn on one connection; the answers in order."""
    out = []
    async with websockets.connect(
        url, additional_headers={"Authorization": f"Bearer {key}"}, subprotocols=["binary"], ping_interval=None
    ) as ws:
        await ws.send(json.dumps({"mode": "offline", "wav_name": "spk", "is_speaking": True, **options}))
        for clip in clips:
            await ws.send(pcm16(clip))
            await ws.send(json.dumps({"is_speaking": False}))
            out.append(json.loads(await asyncio.wait_for(ws.recv(), timeout=60)))
            if out[-1].get("error"):
                break
    return out


def test_diarize_names_two_voices_by_first_appearance(stream_worker, tenant, api_key, grant):
    grant(tenant, 10_000)
    clips, truth = turns_audio()
    finals = asyncio.run(offline_turns(stream_worker.url, api_key[1], clips, diarize=True))
    assert [m["mode"] for m in finals] == ["offline"] * len(truth) and all(m["is_final"] for m in finals)
    order = list(dict.fromkeys(truth))
    assert [m["spk_name"] for m in finals] == [f"S{order.index(who) + 1}" for who in truth]
    assert all(isinstance(m["spk_score"], float) for m in finals)


def test_voiceprints_name_enrolled_speakers_and_other_tenants_ids_are_refused(
    stream_worker, tenant, other_tenant, api_key, grant
):
    from tests.transcription.test_speakers import enroll

    grant(tenant, 10_000)
    speakers = {who: enroll(tenant, who) for who in EASY_PAIR}
    clips, truth = turns_audio()
    ids = ",".join(str(s.pk) for s in speakers.values())  # the comma string form
    finals = asyncio.run(offline_turns(stream_worker.url, api_key[1], clips, speaker_ids=ids))
    assert [m["spk_name"] for m in finals] == truth
    assert all(m["spk_score"] >= 0.3 for m in finals)

    theirs = enroll(other_tenant, "male_us")
    refused = asyncio.run(offline_turns(stream_worker.url, api_key[1], clips[:1], speaker_ids=[str(theirs.pk)]))
    assert refused[0]["error"] == "not_found: No such speaker." and refused[0]["is_end"] is True


def test_finals_without_speaker_options_carry_no_speaker(stream_worker, tenant, api_key, grant):
    grant(tenant, 10_000)
    clips, _ = turns_audio(1)
    finals = asyncio.run(offline_turns(stream_worker.url, api_key[1], clips))
    assert set(finals[0]) - {"timestamp"} == {"mode", "text", "wav_name", "is_final"}  # word times, no speaker
