"""Voice activity detection for live streams: silero's ONNX model, one recurrent state per stream.

The ONNX session is shared (onnxruntime sessions may run concurrently); everything that changes while a stream
runs (the model's h/c state, the carried context, thresholds, the end-silence wait) lives in each StreamingVad,
so one stream's settings never leak into another's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from transcription.constants import SAMPLE_RATE
from transcription.vad import VAD_CONTEXT, VAD_FRAME, _session

FRAME_MS = VAD_FRAME * 1000 / SAMPLE_RATE  # 32 ms


@dataclass(frozen=True)
class VadEvent:
    kind: str  # "start" | "end"
    sample: int  # absolute position in the stream (16 kHz samples), padding included


class StreamingVad:
    """Feed 16 kHz float32 audio of any length; get speech start/end events with absolute sample positions.

    Speech starts at the first frame at or above `threshold`; it ends once `end_silence_ms` of frames stay below
    threshold - 0.15 (hysteresis). Events are padded by `pad_ms` on both sides.
    """

    def __init__(self, *, end_silence_ms: int = 500, threshold: float = 0.5, pad_ms: int = 100) -> None:
        self.end_frames = max(1, math.ceil(end_silence_ms / FRAME_MS))
        self.threshold = float(threshold)
        self.low = max(self.threshold - 0.15, 0.01)
        self.pad = int(pad_ms * SAMPLE_RATE / 1000)
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(VAD_CONTEXT, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)
        self._frames = 0  # frames already judged
        self._speech_start: int | None = None  # frame index
        self._quiet = 0

    @property
    def in_speech(self) -> bool:
        return self._speech_start is not None

    def feed(self, samples: np.ndarray) -> list[VadEvent]:
        data = np.concatenate([self._pending, np.asarray(samples, dtype=np.float32).reshape(-1)])
        count = data.shape[0] // VAD_FRAME
        self._pending = data[count * VAD_FRAME :]
        if count == 0:
            return []
        piece = np.concatenate([self._context, data[: count * VAD_FRAME]])
        rows = np.lib.stride_tricks.as_strided(
            piece, shape=(count, VAD_CONTEXT + VAD_FRAME), strides=(VAD_FRAME * 4, 4), writeable=False
        )
        out, self._h, self._c = _session().run(None, {"input": np.ascontiguousarray(rows), "h": self._h, "c": self._c})
        self._context = piece[-VAD_CONTEXT:].copy()
        events: list[VadEvent] = []
        for p in np.asarray(out, dtype=np.float32).reshape(-1).tolist():
            i = self._frames
            self._frames += 1
            if self._speech_start is None:
                if p >= self.threshold:
                    self._speech_start, self._quiet = i, 0
                    events.append(VadEvent("start", max(0, i * VAD_FRAME - self.pad)))
            elif p < self.low:
                self._quiet += 1
                if self._quiet >= self.end_frames:
                    end = (i - self._quiet + 1) * VAD_FRAME + self.pad
                    events.append(VadEvent("end", end))
                    self._speech_start = None
            else:
                self._quiet = 0
        return events

    def flush(self, total: int) -> list[VadEvent]:
        """The stream (or utterance) ended at sample `total`: close an open segment there."""
        if self._speech_start is None:
            return []
        self._speech_start = None
        return [VadEvent("end", total)]
