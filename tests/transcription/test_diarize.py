"""Diarization: our clustering on synthetic embeddings, and the trained tiny CAM++ on two-voice espeak clips
through the one recognition path (recognize_samples with a SpeakerTrack)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.audio_samples import SR, has_tool
from transcription.diarize import SpeakerOptions, SpeakerTrack, cluster, segment_dict, speech_windows
from transcription.engines.base import Segment

needs_espeak = pytest.mark.skipif(not (has_tool("espeak-ng") and has_tool("sox")), reason="needs espeak-ng and sox")


def _voices(rng, n_per: tuple[int, ...], dim: int = 64, spread: float = 0.35) -> tuple[np.ndarray, np.ndarray]:
    centres = rng.standard_normal((len(n_per), dim))
    rows, truth = [], []
    for who, n in enumerate(n_per):
        rows.append(centres[who] + spread * rng.standard_normal((n, dim)))
        truth += [who] * n
    embs = np.concatenate(rows)
    return embs / np.linalg.norm(embs, axis=1, keepdims=True), np.array(truth)


def test_cluster_finds_the_speakers_in_order_of_first_appearance():
    rng = np.random.default_rng(0)
    embs, truth = _voices(rng, (30, 25, 12))
    order = rng.permutation(len(truth))
    labels = cluster(embs[order], threshold=0.5)
    truth = truth[order]
    assert labels[0] == 0
    assert len(set(labels.tolist())) == 3
    mapping = {t: labels[truth == t][0] for t in range(3)}
    assert all(labels[i] == mapping[truth[i]] for i in range(len(truth)))


def test_cluster_honours_min_and_max_speakers():
    rng = np.random.default_rng(1)
    embs, _ = _voices(rng, (20, 20, 20))
    assert int(cluster(embs, threshold=0.5, max_speakers=2).max()) + 1 == 2
    one, _ = _voices(rng, (30,), spread=0.2)
    assert int(cluster(one, threshold=0.5).max()) + 1 == 1
    assert int(cluster(one, threshold=0.5, min_speakers=2).max()) + 1 == 2


def test_cluster_works_below_funasrs_20_window_cliff():
    rng = np.random.default_rng(2)
    embs, truth = _voices(rng, (4, 3))
    labels = cluster(embs, threshold=0.5)
    assert labels.tolist() == truth.tolist()


def test_windows_cover_each_region_and_have_one_length():
    regions = [(0, int(4.2 * SR)), (int(5 * SR), int(5.3 * SR)), (int(6 * SR), int(7 * SR))]
    windows = speech_windows(regions)
    long = [w for w in windows if w[1] <= regions[0][1]]
    assert {e - s for s, e in long} == {int(1.5 * SR)}
    assert long[0][0] == 0 and long[-1][1] == regions[0][1]
    assert (int(6 * SR), int(7 * SR)) in windows  # a short region is one piece
    assert all(not (s >= regions[1][0] and e <= regions[1][1]) for s, e in windows)  # 0.3 s: too short


class _CountingEngine:
    name = "counting"

    def __init__(self):
        self.pieces = 0

    def embed(self, pieces):
        self.pieces += len(pieces)
        return np.ones((len(pieces), 4), dtype=np.float32) / 2


def test_the_track_keeps_embeddings_not_audio():
    engine = _CountingEngine()
    track = SpeakerTrack(engine=engine, options=SpeakerOptions(diarize=True))
    audio = np.zeros(60 * SR, dtype=np.float32)
    track.feed(audio, [(0, 60 * SR)], base=0)
    stored = sum(block.nbytes for block in track.embeddings)
    assert engine.pieces == len(track.spans) > 70
    assert stored == len(track.spans) * 4 * 4  # 4 floats per window, no samples
    segments = track.label((Segment(0.0, 60.0, "hi"),))
    assert segments[0].speaker == "S1" and segment_dict(segments[0])["speaker"] == "S1"


def test_voiceprints_without_a_match_say_unknown():
    from transcription.diarize import Voiceprint

    engine = _CountingEngine()
    far = Voiceprint(speaker_id="x", name="Alice", embedding=np.array([0.5, -0.5, 0.5, -0.5], dtype=np.float32))
    track = SpeakerTrack(engine=engine, options=SpeakerOptions(voiceprints=(far,), voiceprint_threshold=0.5))
    track.feed(np.zeros(3 * SR, dtype=np.float32), [(0, 3 * SR)], base=0)
    (seg,) = track.label((Segment(0.0, 3.0, "hi"),))
    assert seg.speaker == "unknown" and seg.speaker_score == 0.0
