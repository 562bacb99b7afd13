"""Diarization cost and quality: CPU seconds per audio second and memory on a long two-voice recording with the
full-size CAM++ (real dims, random weights: compute does not depend on weight values), and the diarization
error rate (DER) of the trained tiny CAM++ fixture on the two-voice espeak clips.

Usage: .venv/bin/python bench/speakers.py [--minutes 60] [--threads 1]

The long recording is a two-voice espeak conversation looped, fed in 5-minute chunks exactly as the pipeline
feeds windows (VAD regions, SpeakerTrack.feed); it is generated chunk by chunk, never held whole. Only the
speaker step is timed (VAD is the pipeline's cost with or without speakers). Memory: the growth of the
process's peak RSS over the run, next to what the track keeps (the embeddings).
"""

from __future__ import annotations

import argparse
import os
import resource
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

from tests.speaker_samples import EASY_PAIR, HARD_PAIR, SPEAKER_MODEL, TURN_SENTENCES, conversation  # noqa: E402
from transcription.diarize import SpeakerOptions, SpeakerTrack  # noqa: E402
from transcription.engines.base import Segment  # noqa: E402
from transcription.engines.speaker import FunASRSpeakerEngine  # noqa: E402
from transcription.vad import speech_regions  # noqa: E402

SR = 16_000
CHUNK_S = 300


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def diarize_regions(track: SpeakerTrack, samples: np.ndarray, regions) -> tuple[Segment, ...]:
    track.feed(samples, regions, base=0)
    return track.label(tuple(Segment(s / SR, e / SR, "x") for s, e in regions))


def der(turns, segments, *, step: float = 0.01) -> float:
    """Frame DER: (missed + false alarm + confusion) / reference speech, best label->speaker mapping by overlap."""
    end = max([t.end for t in turns] + [s.end for s in segments])
    frames = int(end / step) + 1
    ref = np.full(frames, "", dtype=object)
    hyp = np.full(frames, "", dtype=object)
    for t in turns:
        ref[int(t.start / step) : int(t.end / step)] = t.speaker
    for s in segments:
        hyp[int(s.start / step) : int(s.end / step)] = s.speaker
    mapping = {}
    for label in {h for h in hyp if h}:
        names, counts = np.unique(ref[(hyp == label) & (ref != "")], return_counts=True)
        mapping[label] = names[int(np.argmax(counts))] if len(names) else ""
    mapped = np.array([mapping.get(h, "") for h in hyp], dtype=object)
    speech = ref != ""
    missed = np.sum(speech & (mapped == ""))
    false_alarm = np.sum(~speech & (mapped != ""))
    confusion = np.sum(speech & (mapped != "") & (mapped != ref))
    return float((missed + false_alarm + confusion) / max(1, speech.sum()))


def long_run(minutes: float, threads: int) -> None:
    from django.conf import settings

    from transcription.testmodels import build_speaker_model

    with tempfile.TemporaryDirectory() as tmp:
        full = build_speaker_model(Path(tmp) / "campplus_full", full=True)
        engine = FunASRSpeakerEngine(model=str(full), device="cpu", threads=threads)
        engine.load()
        unit, _ = conversation(HARD_PAIR, TURN_SENTENCES * 4)
        engine.embed([unit[: int(1.5 * SR)]])  # warm up
        track = SpeakerTrack(
            engine=engine, options=SpeakerOptions(diarize=True, cluster_threshold=settings.SPEAKER_CLUSTER_THRESHOLD)
        )
        base_rss = peak_rss_mb()
        total = int(minutes * 60 * SR)
        spk_cpu = 0.0
        speech = 0
        wall = time.perf_counter()
        for start in range(0, total, CHUNK_S * SR):
            length = min(CHUNK_S * SR, total - start)
            chunk = np.resize(np.roll(unit, -(start % unit.shape[0])), length).astype(np.float32)
            regions = speech_regions(chunk, min_silence_ms=200)
            speech += sum(e - s for s, e in regions)
            cpu = time.process_time()
            track.feed(chunk, regions, base=start)
            spk_cpu += time.process_time() - cpu
            del chunk
        cpu = time.process_time()
        labelled = track.label((Segment(0.0, minutes * 60, "x"),))
        cluster_cpu = time.process_time() - cpu
        wall = time.perf_counter() - wall
        kept = sum(block.nbytes for block in track.embeddings) / 1e6
        audio_s = total / SR
        print(f"long run: {minutes:g} min of two-voice audio ({speech / SR:.0f} s speech), full-size CAM++ "
              f"(6.9 M params, random weights), {threads} torch thread(s), {len(track.spans)} windows")  # fmt: skip
        print(f"  speaker CPU: {spk_cpu + cluster_cpu:.1f} s = {(spk_cpu + cluster_cpu) / audio_s:.4f} CPU s per "
              f"audio s (embedding {spk_cpu:.1f} s, clustering {cluster_cpu:.2f} s); wall incl. VAD {wall:.0f} s")  # fmt: skip
        print(f"  memory: peak RSS +{peak_rss_mb() - base_rss:.0f} MB over the model-loaded baseline "
              f"({base_rss:.0f} MB); embeddings kept {kept:.2f} MB; labels {labelled[0].speaker}")  # fmt: skip


def der_run() -> None:
    from django.conf import settings

    engine = FunASRSpeakerEngine(model=str(SPEAKER_MODEL), device="cpu")
    for name, pair in (("easy (male/female)", EASY_PAIR), ("hard (two male)", HARD_PAIR)):
        samples, turns = conversation(pair)
        regions = speech_regions(samples, min_silence_ms=200)
        track = SpeakerTrack(
            engine=engine, options=SpeakerOptions(diarize=True, cluster_threshold=settings.SPEAKER_CLUSTER_THRESHOLD)
        )
        segments = diarize_regions(track, samples, regions)
        print(f"tiny CAM++ fixture, {name}: DER {der(turns, segments):.1%} over {len(turns)} turns, "
              f"{len({s.speaker for s in segments})} speakers found")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    der_run()
    long_run(args.minutes, args.threads)


if __name__ == "__main__":
    main()
