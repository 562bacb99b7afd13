"""The stream engine's finals: utterances that end together are decoded in one batch, each as it is alone."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from tests.audio_samples import speak_fixture
from tests.streaming.conftest import FIXTURE_MODEL
from transcription.engines.base import TranscribeOptions
from transcription.engines.funasr import FunASREngine
from transcription.engines.streaming import StreamingEngine


def test_finals_waiting_together_are_decoded_in_one_batch_with_the_results_of_each_alone(monkeypatch):
    engine = StreamingEngine(offline_model=str(FIXTURE_MODEL), online_model="", device="cpu", replicas=1)
    options = TranscribeOptions(itn=True)
    pad = np.zeros(1600, dtype=np.float32)
    utterances = [np.concatenate([pad, speak_fixture(sid), pad]) for sid in ("zh_park", "zh_welcome", "en_welcome")]
    utterances += [u[: int(u.shape[0] * 0.7)] for u in utterances]  # six different lengths
    alone = [engine.offline_decode(u, options, offset_s=float(i)) for i, u in enumerate(utterances)]

    sizes: list[int] = []
    first = threading.Event()
    original = FunASREngine.transcribe_windows

    def recorded(self, windows):
        sizes.append(len(windows))
        if not first.is_set():
            first.set()
            time.sleep(0.5)  # the other finals arrive while the only replica decodes the first
        return original(self, windows)

    monkeypatch.setattr(FunASREngine, "transcribe_windows", recorded)
    with ThreadPoolExecutor(max_workers=len(utterances)) as pool:
        head = pool.submit(engine.offline_decode, utterances[0], options, offset_s=0.0)
        assert first.wait(30)
        rest = [
            pool.submit(engine.offline_decode, u, options, offset_s=float(i)) for i, u in enumerate(utterances) if i
        ]
        together = [head.result(60)] + [f.result(60) for f in rest]
    engine.close()

    assert sizes[0] == 1 and max(sizes) > 1, sizes  # the finals that waited shared a call
    assert sum(sizes) == len(utterances)
    for a, b in zip(alone, together, strict=True):
        assert (a.text, a.segments, a.language) == (b.text, b.segments, b.language)
