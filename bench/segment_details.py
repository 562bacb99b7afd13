"""What word timestamps and segment scores cost: recognition time with and without them, same audio and engine.

    .venv/bin/python bench/segment_details.py            # the trained fixture model on CPU (ASR_MODEL to change)

Prints the engine's time (the pipeline's VAD regions found once), the median of REPEATS interleaved runs per
option set, and the increase over plain recognition.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.test")

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
from django.conf import settings  # noqa: E402

from tests import audio_samples as samples  # noqa: E402
from transcription.engines.base import TranscribeOptions  # noqa: E402
from transcription.engines.funasr import FunASREngine  # noqa: E402
from transcription.pipeline import VAD_MIN_SILENCE_MS  # noqa: E402
from transcription.vad import speech_regions  # noqa: E402

REPEATS = 15
CASES = {
    "plain": TranscribeOptions(),
    "scores": TranscribeOptions(scores=True),
    "words": TranscribeOptions(word_timestamps=True),
    "words+scores": TranscribeOptions(word_timestamps=True, scores=True),
}


def main() -> None:
    engine = FunASREngine(model=os.environ.get("ASR_MODEL", settings.ASR_MODEL), device=os.environ.get("DEVICE", "cpu"))
    parts = [samples.speak_fixture(name) for name in ("zh_park", "zh_welcome", "en_welcome")]
    gap = samples.silence(1.5)
    audio = np.concatenate([x for part in parts * 2 for x in (part, gap)])  # six sentences, six pieces
    regions = speech_regions(audio, min_silence_ms=VAD_MIN_SILENCE_MS)  # the pipeline's VAD, once: engine time only
    for options in CASES.values():  # warm up
        engine.transcribe_regions(audio, regions=regions, options=options)
    print(f"model {engine.name} ({engine.model_class}) on {engine.device}; {audio.shape[0] / 16000:.1f} s of audio, "
          f"{len(regions)} speech regions; engine time (transcribe_regions), cases interleaved")  # fmt: skip
    runs: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(REPEATS):
        for name, options in CASES.items():
            started = time.perf_counter()
            engine.transcribe_regions(audio, regions=regions, options=options)
            runs[name].append((time.perf_counter() - started) * 1000)
    base = statistics.median(runs["plain"])
    for name, times in runs.items():
        median = statistics.median(times)
        print(f"{name:>13}: {median:7.1f} ms median of {REPEATS} ({(median / base - 1) * 100:+.1f}% over plain)")


if __name__ == "__main__":
    main()
