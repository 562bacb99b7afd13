"""The engine interface: what the rest of Tingxie knows about speech recognition.

An engine recognizes speech regions of decoded audio (16 kHz mono float32 numpy) and returns text with
segment times; finding the regions, cutting windows and voting on the language is the pipeline's job
(transcription.pipeline). Implementations must:
- never receive or open a user-supplied path or URL (they get arrays only);
- load their model lazily, once per process, on first use (never at import);
- call `progress(fraction)` with 0..1 as batches complete (it may raise to abort);
- return times in seconds on the ORIGINAL audio timeline (after undoing VAD cuts);
- turn model tags (language, emotion, events) into fields, never leave them in text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from billing.tokens import CJK_CLASS

_CJK = re.compile(CJK_CLASS)


@dataclass(frozen=True)
class Word:
    word: str
    start: float  # seconds on the original timeline
    end: float


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str
    language: str = ""
    emotion: str = ""
    events: tuple[str, ...] = ()
    speaker: str = ""  # S1, S2... (diarization) or an enrolled speaker's name / "unknown" (voiceprints)
    speaker_score: float | None = None  # cosine to the best voiceprint, when voiceprints were given
    # Only when asked for (TranscribeOptions) and the model gives them; None otherwise:
    words: tuple[Word, ...] | None = None
    tokens: tuple[int, ...] | None = None  # the model's token ids for the text
    avg_logprob: float | None = None  # their mean log-probability
    no_speech_prob: float | None = None  # the model's probability that the piece holds no speech


@dataclass(frozen=True)
class TranscribeOptions:
    language: str = "auto"  # auto, zh, en, yue, ja, ko
    itn: bool = True
    vad: bool = True
    hotwords: tuple[str, ...] = ()
    word_timestamps: bool = False  # Segment.words (costs an alignment on models that can)
    scores: bool = False  # Segment.tokens, avg_logprob, no_speech_prob (models that can)


@dataclass(frozen=True)
class EngineResult:
    text: str
    segments: tuple[Segment, ...]
    language: str
    audio_s: float
    speech_s: float
    vad_ms: int
    asr_ms: int
    model: str
    extra: dict = field(default_factory=dict)
    warnings: tuple[str, ...] = ()  # for the caller, e.g. hotwords this model cannot use


ProgressCallback = Callable[[float], None]


@dataclass(frozen=True, eq=False)
class Window:
    """One window of one recording, as the pipeline cuts it: what `transcribe_windows` recognizes in a batch."""

    audio: np.ndarray
    regions: list[tuple[int, int]] | None
    options: TranscribeOptions
    offset_s: float = 0.0


@dataclass(frozen=True)
class BatchLimits:
    """How much one model call may take on this engine's device (settings.ASR_BATCH): seconds of padded audio,
    pieces, and for the worker's scheduler: recordings recognized together and the wait for more ready ones."""

    budget_s: float = 0.0
    max_items: int = 1
    max_jobs: int = 1
    max_wait_ms: float = 0.0
    window_s: float = 300.0


class EngineUnavailable(Exception):
    """The model cannot be loaded on this worker (wrong ASR_MODEL, hub unreachable, no device).

    An operator problem, not the customer's: jobs fail uncharged with code `model_unavailable`.
    """


def join_texts(parts: list[str]) -> str:
    """Join segment texts: a space between them unless both sides are CJK."""
    out = ""
    for part in parts:
        if not part:
            continue
        if out and not (_CJK.search(out[-1]) and _CJK.search(part[0])):
            out += " "
        out += part
    return out


class BaseEngine:
    """Subclasses implement `transcribe_regions`; `name` identifies the model for cache keys and holds."""

    name: str = ""

    def __init__(self, **options) -> None:
        self.options = options

    def transcribe_regions(
        self,
        audio: np.ndarray,
        *,
        regions: list[tuple[int, int]] | None,
        options: TranscribeOptions,
        offset_s: float = 0.0,
        progress: ProgressCallback | None = None,
    ) -> EngineResult:
        """Recognize one window of a recording whose speech the pipeline already found.

        `regions` are speech (start, end) sample ranges inside `audio` (None: recognize all of it, as with
        options.vad off); segment times come back shifted by `offset_s`, the window's place on the original
        timeline.
        """
        raise NotImplementedError("Engines must implement transcribe_regions().")

    def transcribe_windows(self, windows: list[Window]) -> list[EngineResult | Exception]:
        """Recognize windows of several recordings; one result (or the exception that window alone raised) each.

        Engines that can batch override this and run the windows' speech in shared model calls; a failure in a
        shared call must fall back to each window alone, so one bad window never fails the others.
        """
        out: list[EngineResult | Exception] = []
        for w in windows:
            try:
                out.append(self.transcribe_regions(w.audio, regions=w.regions, options=w.options, offset_s=w.offset_s))
            except Exception as exc:  # noqa: BLE001 - returned to its own window's caller
                out.append(exc)
        return out

    def batch_limits(self) -> BatchLimits:
        """The batching limits for the device the model runs on (default: one recording at a time)."""
        return BatchLimits()

    def load(self) -> None:
        """Load the model now, once per process (otherwise the first recognition does). Optional."""

    def close(self) -> None:
        """Release model memory (GPU caches included). Optional."""


class BaseSpeakerEngine:
    """Speaker embeddings for diarization and voiceprints. Implementations must:
    - take decoded 16 kHz mono float32 arrays only (never a path or URL);
    - load their model lazily, once per process;
    - return one L2-normalized row per piece, in input order (`embed`).
    """

    name: str = ""

    def __init__(self, **options) -> None:
        self.options = options

    def embed(self, pieces: list[np.ndarray]) -> np.ndarray:
        raise NotImplementedError("Speaker engines must implement embed().")

    def load(self) -> None:
        """Load the model now (otherwise the first embed() does). Optional."""

    def close(self) -> None:
        """Release model memory. Optional."""
