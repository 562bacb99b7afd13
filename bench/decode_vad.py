"""Decode + VAD cost in CPU seconds per audio second on a 10-minute half-silent file, per format (target <= 0.003)."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.test")

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402

from tests import audio_samples as samples  # noqa: E402
from transcription.audio import probe  # noqa: E402
from transcription.vad import speech_regions  # noqa: E402

SECONDS = 600.0
TARGET = 0.003
FORMATS = ("wav", "mp3", "m4a", "flac", "ogg", "opus", "webm")


def main() -> None:
    speech = np.concatenate([samples.speak_fixture(s["id"]) for s in samples.FIXTURE_SENTENCES])
    audio = samples.half_silent(SECONDS, speech=speech)
    rng = np.random.default_rng(0)
    audio = audio + (rng.standard_normal(audio.shape[0]) * 0.001).astype(np.float32)  # a faint noise floor
    speech_regions(audio[:16000])  # load the ONNX session outside the timings
    with tempfile.TemporaryDirectory() as tmp:
        src = samples.write_wav(Path(tmp) / "src.wav", np.stack([audio, audio], axis=1), rate=16_000)
        stereo48 = Path(tmp) / "stereo48k.wav"
        samples.convert(src, stereo48, extra=["-ar", "48000"])
        files = {"wav 48k stereo": stereo48}
        for fmt in FORMATS[1:]:
            files[fmt] = samples.convert(stereo48, Path(tmp) / f"half_silent.{fmt}")
        print(f"{SECONDS / 60:.0f} min half-silent audio, one thread, CPU s per audio s (target <= {TARGET})")
        print(f"{'format':16} {'probe ms':>9} {'decode':>9} {'vad':>9} {'total':>9} {'speech %':>9}")
        worst = 0.0
        for name, path in files.items():
            t0 = time.perf_counter()
            probe(path)
            probe_ms = (time.perf_counter() - t0) * 1000
            c0 = time.process_time()
            decoded = samples.decode_all(path, max_seconds=SECONDS + 60)
            c1 = time.process_time()
            regions = speech_regions(decoded.samples)
            c2 = time.process_time()
            kept = sum(e - s for s, e in regions) / decoded.samples.shape[0]
            dec, vad = (c1 - c0) / decoded.duration_s, (c2 - c1) / decoded.duration_s
            worst = max(worst, dec + vad)
            print(f"{name:16} {probe_ms:9.1f} {dec:9.5f} {vad:9.5f} {dec + vad:9.5f} {100 * kept:8.1f}%")
        print(f"worst total: {worst:.5f} CPU s per audio s -> {'OK' if worst <= TARGET else 'ABOVE TARGET'}")


if __name__ == "__main__":
    main()
