"""The engine interface: what the rest of Tingxie knows about speech recognition.

An engine turns decoded audio (16 kHz mono float32 numpy) into text with segment times.
Implementations must:
- never receive or open a user-supplied path or URL (they get arrays only);
- load their model lazily, once per process, on first use (never at import);
- call `progress(fraction)` with 0..1 as batches complete (it may raise to abort);
- return times in seconds on the ORIGINAL audio timeline (after undoing VAD cuts);
- turn model tags (language, emotion, events) into fields, never leave them in text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str
    language: str = ""
    emotion: str = ""
    events: tuple[str, ...] = ()


@dataclass(frozen=True)
class TranscribeOptions:
    language: str = "auto"  # auto, zh, en, yue, ja, ko
    itn: bool = True
    vad: bool = True
    hotwords: tuple[str, ...] = ()


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


ProgressCallback = Callable[[float], None]


class BaseEngine:
    """Subclasses implement `transcribe`; `name` identifies the model for cache keys and holds."""

    name: str = ""

    def __init__(self, **options) -> None:
        self.options = options

    def transcribe(
        self, audio: np.ndarray, *, options: TranscribeOptions, progress: ProgressCallback | None = None
    ) -> EngineResult:
        raise NotImplementedError("Engines must implement transcribe().")

    def close(self) -> None:
        """Release model memory (GPU caches included). Optional."""
