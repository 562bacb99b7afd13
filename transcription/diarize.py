"""Who spoke when: speaker windows embedded as the pipeline streams, clustered at the end, named by voiceprints.

Only embeddings are kept (one row of 192 floats per 1.5 s window: ~4 MB for an hour of speech), never the
windows' audio. Clustering is our own and works at every length: funasr's ClusterBackend gives one speaker
below 20 windows (~15 s of speech), so a short call could never show two. Average-linkage clustering on
cosine distance, cut at the threshold (or at the asked number of speakers), on at most MAX_LINKAGE windows;
every window then joins the nearest centroid (cosine to the speakers' centroids), k-means rounds settle them,
and stray tiny clusters are folded in.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from transcription.constants import SAMPLE_RATE
from transcription.engines.base import BaseSpeakerEngine, Segment

WINDOW_S = 1.5  # embedding window (as funasr's sv_chunk)
SHIFT_S = 0.75
MIN_PIECE_S = 0.4  # shorter speech regions are not embedded
MAX_SPEAKERS = 20
MAX_LINKAGE = 1500  # windows clustered together (about 19 min of speech); the rest join the nearest centroid
MERGE_COS = 0.6  # speaker centroids at least this similar are merged
MIN_SHARE = 0.03  # a cluster of at most this share of the windows (or two windows) is folded in
UNKNOWN = "unknown"


def segment_dict(seg: Segment) -> dict:
    """A segment as stored on the transcription (speaker fields only when speakers were asked for; words and
    scores only when asked for and the model gave them)."""
    out: dict = {"start": round(seg.start, 3), "end": round(seg.end, 3), "text": seg.text}
    if seg.speaker:
        out["speaker"] = seg.speaker
    if seg.speaker_score is not None:
        out["speaker_score"] = seg.speaker_score
    if seg.words is not None:
        out["words"] = [{"word": w.word, "start": w.start, "end": w.end} for w in seg.words]
    if seg.tokens is not None:
        out["tokens"] = list(seg.tokens)
    for name in ("avg_logprob", "no_speech_prob"):
        if getattr(seg, name) is not None:
            out[name] = getattr(seg, name)
    return out


@dataclass(frozen=True)
class Voiceprint:
    speaker_id: str
    name: str
    embedding: np.ndarray  # L2-normalized


@dataclass(frozen=True)
class SpeakerOptions:
    diarize: bool = False
    min_speakers: int = 1
    max_speakers: int = MAX_SPEAKERS
    voiceprints: tuple[Voiceprint, ...] = ()
    cluster_threshold: float = 0.5
    voiceprint_threshold: float = 0.5

    @property
    def active(self) -> bool:
        return self.diarize or bool(self.voiceprints)


def speech_windows(regions: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """WINDOW_S windows every SHIFT_S inside each region; the last one ends at the region's end (equal lengths
    batch together); a region shorter than a window is one piece of its own length."""
    win, shift, shortest = (int(x * SAMPLE_RATE) for x in (WINDOW_S, SHIFT_S, MIN_PIECE_S))
    out: list[tuple[int, int]] = []
    for start, end in regions:
        if end - start < shortest:
            continue
        if end - start <= win:
            out.append((start, end))
            continue
        at = start
        while at + win < end:
            out.append((at, at + win))
            at += shift
        out.append((end - win, end))
    return out


def _normalize(matrix: np.ndarray) -> np.ndarray:
    return matrix / np.maximum(np.linalg.norm(matrix, axis=-1, keepdims=True), 1e-12)


def _centroids(embs: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    return _normalize(np.stack([embs[labels == c].mean(0) if np.any(labels == c) else embs[0] * 0 for c in range(k)]))


def _compact(labels: np.ndarray) -> np.ndarray:
    """Labels renumbered 0..k-1 in order of first appearance."""
    order: dict[int, int] = {}
    for label in labels.tolist():
        order.setdefault(label, len(order))
    return np.array([order[label] for label in labels.tolist()], dtype=np.int64)


def _kmeans(embs: np.ndarray, centroids: np.ndarray, rounds: int = 5) -> np.ndarray:
    labels = np.argmax(embs @ centroids.T, axis=1)
    for _ in range(rounds):
        labels = _compact(labels)
        centroids = _centroids(embs, labels, int(labels.max()) + 1)
        new = np.argmax(embs @ centroids.T, axis=1)
        if np.array_equal(_compact(new), labels):
            break
        labels = new
    return _compact(labels)


def _agglomerate(embs: np.ndarray, *, threshold: float, low: int, high: int) -> np.ndarray:
    """Average-linkage clustering on cosine distance, cut where speakers are less similar than `threshold`."""
    from scipy.cluster.hierarchy import fcluster, linkage

    if embs.shape[0] < 2:
        return np.zeros(embs.shape[0], dtype=np.int64)
    tree = linkage(embs.astype(np.float64), method="average", metric="cosine")
    labels = fcluster(tree, t=1.0 - threshold, criterion="distance")
    k = int(labels.max())
    if k > high or k < low:
        labels = fcluster(tree, t=min(max(k, low), high), criterion="maxclust")
    return labels.astype(np.int64) - 1


def cluster(embs: np.ndarray, *, threshold: float, min_speakers: int = 1, max_speakers: int = MAX_SPEAKERS):
    """Speaker label per row of L2-normalized `embs` (0, 1, ... in order of first appearance).

    At most MAX_LINKAGE windows (evenly spaced) are clustered together, so time and memory stay bounded for
    any length; every window then joins the nearest speaker centroid, and a few k-means rounds settle them.
    """
    n = embs.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    low, high = max(1, min(min_speakers, n)), max(1, min(max_speakers, n))
    sample = np.linspace(0, n - 1, num=min(n, MAX_LINKAGE)).round().astype(np.int64)
    sample = np.unique(sample)
    labels = _agglomerate(embs[sample], threshold=threshold, low=low, high=high)
    k = int(labels.max()) + 1
    labels = _kmeans(embs, _centroids(embs[sample], labels, k))
    # Speakers whose centroids are near-identical are one speaker (centroids are steadier than windows).
    while int(labels.max()) + 1 > low:
        k = int(labels.max()) + 1
        cents = _centroids(embs, labels, k)
        sims = cents @ cents.T
        np.fill_diagonal(sims, -2.0)
        if sims.max() < MERGE_COS:
            break
        a, b = np.unravel_index(int(np.argmax(sims)), sims.shape)
        labels[labels == max(a, b)] = min(a, b)
        labels = _kmeans(embs, _centroids(embs, _compact(labels), k - 1))
    # One stray window is not a speaker: fold clusters of fewer than MIN_SHARE of the windows into the nearest.
    while int(labels.max()) + 1 > low:
        k = int(labels.max()) + 1
        sizes = np.bincount(labels, minlength=k)
        small = int(np.argmin(sizes))
        if sizes[small] > max(2, int(MIN_SHARE * n)):
            break
        cents = _centroids(embs, labels, k)
        sims = cents @ cents[small]
        sims[small] = -2.0
        labels[labels == small] = int(np.argmax(sims))
        labels = _compact(labels)
    return _compact(labels)


class SpeakerTrack:
    """Fed window by window by the pipeline (the same audio and speech regions the engine gets)."""

    def __init__(self, *, engine: BaseSpeakerEngine, options: SpeakerOptions, unknown_when_unmatched: bool = False):
        self.engine, self.options = engine, options
        self.unknown_when_unmatched = unknown_when_unmatched or bool(options.voiceprints)  # speaker_ids were asked
        self.spans: list[tuple[int, int]] = []  # windows on the original timeline, in samples
        self.embeddings: list[np.ndarray] = []  # one (m, D) block per fed window
        self.embed_ms = 0

    def feed(self, audio: np.ndarray, regions: list[tuple[int, int]] | None, base: int) -> None:
        import time

        if not self.options.active:
            return
        started = time.perf_counter()
        pieces = speech_windows(regions if regions is not None else [(0, audio.shape[0])])
        if pieces:
            self.embeddings.append(self.engine.embed([audio[s:e] for s, e in pieces]).astype(np.float32))
            self.spans.extend((base + s, base + e) for s, e in pieces)
        self.embed_ms += int((time.perf_counter() - started) * 1000)

    def _segment_vectors(self, segments: tuple[Segment, ...]):
        """For each segment, its windows' indices weighted by overlap (samples)."""
        spans = np.array(self.spans, dtype=np.int64).reshape(-1, 2)
        out = []
        for seg in segments:
            lo, hi = int(seg.start * SAMPLE_RATE), int(seg.end * SAMPLE_RATE)
            overlap = np.minimum(spans[:, 1], hi) - np.maximum(spans[:, 0], lo)
            out.append(overlap.clip(min=0))
        return out

    def label(self, segments: tuple[Segment, ...]) -> tuple[Segment, ...]:
        """The segments with `speaker` (S1, S2... by first appearance; or an enrolled name / unknown)."""
        if not segments:
            return segments
        embs = np.concatenate(self.embeddings) if self.embeddings else np.zeros((0, 1), dtype=np.float32)
        weights = self._segment_vectors(segments) if embs.shape[0] else [np.zeros(0)] * len(segments)
        names: list[str] = [""] * len(segments)
        scores: list[float | None] = [None] * len(segments)
        if self.options.diarize and embs.shape[0]:
            window_labels = cluster(
                embs,
                threshold=self.options.cluster_threshold,
                min_speakers=self.options.min_speakers,
                max_speakers=self.options.max_speakers,
            )
            k = int(window_labels.max()) + 1
            raw = []
            for w in weights:
                votes = np.bincount(window_labels, weights=w, minlength=k) if w.sum() else None
                raw.append(int(np.argmax(votes)) if votes is not None else -1)
            order: dict[int, int] = {}
            for r in raw:
                if r >= 0:
                    order.setdefault(r, len(order) + 1)
            names = [f"S{order[r]}" if r >= 0 else "" for r in raw]
        if self.options.voiceprints:
            prints = np.stack([v.embedding for v in self.options.voiceprints])
            for i, w in enumerate(weights):
                if not w.sum():
                    continue
                vector = _normalize((embs * w[:, None]).sum(0))
                sims = prints @ vector
                best = int(np.argmax(sims))
                scores[i] = round(float(sims[best]), 3)
                if sims[best] >= self.options.voiceprint_threshold:
                    names[i] = self.options.voiceprints[best].name
        if self.unknown_when_unmatched:
            names = [n or UNKNOWN for n in names]
        return tuple(replace(s, speaker=n, speaker_score=sc) for s, n, sc in zip(segments, names, scores, strict=True))
