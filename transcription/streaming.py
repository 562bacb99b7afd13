"""Live recognition of one stream, whatever the wire protocol: VAD endpoints, online partials, offline finals.

A StreamRecognizer is fed 16 kHz float32 audio and returns events. Its methods block on inference, so callers
run them off the event loop (StreamingEngine.executor), one call at a time per stream and in order (the
Paraformer cache and the VAD state require it). Protocol adapters (FunASR's runtime protocol today, others
later) translate events into their own messages; billing counts the text of final events.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from transcription.constants import SAMPLE_RATE
from transcription.engines.base import TranscribeOptions, Word, join_texts
from transcription.pipeline import recognize_samples
from transcription.stream_vad import StreamingVad

MAX_SEGMENT_S = 25.0  # continuous speech longer than this is cut into another final (bounds the buffer)
MIN_SEGMENT_S = 0.2  # shorter VAD segments without partial text are noise: no final
PREROLL_S = 0.3  # audio kept before a segment start (the VAD's padding reaches into it)


@dataclass(frozen=True)
class StreamSettings:
    """How a stream is recognized: `partials` from the online model; `segmented`: VAD endpoints close utterances
    (otherwise one final per finish()); `offline_finals`: finals come from the offline model (otherwise they are
    the online text of the segment)."""

    partials: bool = True
    segmented: bool = True
    offline_finals: bool = True
    end_silence_ms: int = 500
    chunk_size: tuple[int, int, int] = (5, 10, 5)
    encoder_look_back: int = 4
    decoder_look_back: int = 1
    options: TranscribeOptions = field(default_factory=TranscribeOptions)
    vad_events: bool = False  # also report "speech_start"/"speech_stop" events, and a final for every segment
    vad_threshold: float = 0.5
    vad_pad_ms: int = 100


@dataclass(frozen=True)
class StreamEvent:
    kind: str  # "partial" (text new since the last partial), "final" (the utterance's text); with vad_events also
    # "speech_start" / "speech_stop" (start_s/end_s: where the VAD put the segment's edges)
    text: str
    start_s: float
    end_s: float
    language: str = ""
    emotion: str = ""
    tail: str = ""  # finals without offline decoding: the online text not yet sent as a partial
    words: tuple[Word, ...] = ()  # offline finals with options.word_timestamps, where the model gives them


class _Audio:
    """A stream's recent audio as a list of chunks (appending never copies what is already held)."""

    def __init__(self, base: int) -> None:
        self.base = base  # absolute sample of the first chunk's first sample
        self.end = base
        self.chunks: list[np.ndarray] = []

    def append(self, samples: np.ndarray) -> None:
        if samples.shape[0]:
            self.chunks.append(samples)
            self.end += samples.shape[0]

    def slice(self, start: int, end: int) -> np.ndarray:
        start, end = max(start, self.base), min(end, self.end)
        if end <= start:
            return np.zeros(0, dtype=np.float32)
        out, pos = [], self.base
        for chunk in self.chunks:
            lo, hi = pos, pos + chunk.shape[0]
            if hi > start and lo < end:
                out.append(chunk[max(0, start - lo) : min(chunk.shape[0], end - lo)])
            pos = hi
        return out[0] if len(out) == 1 else np.concatenate(out)

    def trim(self, keep_from: int) -> None:
        """Forget whole chunks before `keep_from`."""
        while self.chunks and self.base + self.chunks[0].shape[0] <= keep_from:
            self.base += self.chunks.pop(0).shape[0]


class StreamRecognizer:
    """One stream's recognition state. Not thread-safe: one call at a time, in order."""

    def __init__(self, engine, settings: StreamSettings) -> None:
        self.engine = engine
        self.settings = settings
        self.partials = settings.partials and engine.has_online
        self._reset()
        self.total = 0  # samples received, all utterances

    def _reset(self) -> None:
        s = self.settings
        self.vad = (
            StreamingVad(end_silence_ms=s.end_silence_ms, threshold=s.vad_threshold, pad_ms=s.vad_pad_ms)
            if s.segmented
            else None
        )
        self.audio = _Audio(getattr(self, "total", 0))
        self.seg_start: int | None = None
        self.online_cache: dict = {}
        self.online_fed = 0
        self.online_text: list[str] = []

    def _slice(self, start: int, end: int) -> np.ndarray:
        return self.audio.slice(start, end)

    def _online(self, end: int, *, is_final: bool = False) -> str:
        """Feed the online model up to `end`; the new text.

        The model decodes whole strides (chunk_size[1] x 60 ms) and only buffers anything shorter, so shorter
        pieces wait here: a call that would decode nothing still costs a few milliseconds of funasr overhead.
        """
        s = self.settings
        if not self.partials or (not is_final and end - self.online_fed < s.chunk_size[1] * 960):
            return ""
        chunk = self._slice(self.online_fed, end)
        self.online_fed = max(self.online_fed, end)
        delta = self.engine.online_step(
            self.online_cache,
            chunk,
            is_final=is_final,
            chunk_size=s.chunk_size,
            encoder_look_back=s.encoder_look_back,
            decoder_look_back=s.decoder_look_back,
        )
        if delta:
            self.online_text.append(delta)
        return delta

    def _partial(self, events: list[StreamEvent], end: int) -> None:
        delta = self._online(end)
        if delta and self.seg_start is not None:
            events.append(StreamEvent("partial", delta, self.seg_start / SAMPLE_RATE, end / SAMPLE_RATE))

    def _final(self, start: int, end: int) -> StreamEvent | None:
        """Close the utterance [start, end): its final (None for a blip), and a clean online state."""
        end = min(end, self.total)
        tail = ""
        if not self.settings.offline_finals and (self.online_text or end - start >= MIN_SEGMENT_S * SAMPLE_RATE):
            tail = self._online(end, is_final=True)  # flushes the Paraformer's buffered tail
        online_text = join_texts(self.online_text)
        self.online_cache, self.online_text = {}, []
        if end - start < MIN_SEGMENT_S * SAMPLE_RATE and not online_text:
            # a blip: nothing to decode (a protocol that announced the segment still gets its empty final)
            return (
                StreamEvent("final", "", start / SAMPLE_RATE, end / SAMPLE_RATE) if self.settings.vad_events else None
            )
        if not self.settings.offline_finals:
            return StreamEvent("final", online_text, start / SAMPLE_RATE, end / SAMPLE_RATE, tail=tail)
        result = self.engine.offline_decode(
            self._slice(start, end), self.settings.options, offset_s=start / SAMPLE_RATE
        )
        first = result.segments[0] if result.segments else None
        return StreamEvent(
            "final",
            result.text,
            start / SAMPLE_RATE,
            end / SAMPLE_RATE,
            language=result.language,
            emotion=first.emotion if first else "",
            words=_words(result.segments),
        )

    def feed(self, samples: np.ndarray) -> list[StreamEvent]:
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        self.audio.append(samples)
        self.total += samples.shape[0]
        events: list[StreamEvent] = []
        if self.vad is None:
            return events  # one utterance until finish()
        for vad_event in self.vad.feed(samples):
            if vad_event.kind == "start":
                self.seg_start = max(vad_event.sample, self.audio.base)
                self.online_fed = self.seg_start
                self._speech_start(events)
            elif self.seg_start is not None:
                self._close(events, vad_event.sample)
        if self.seg_start is not None and self.total - self.seg_start > MAX_SEGMENT_S * SAMPLE_RATE:
            self._close(events, self.total)
            self.seg_start = self.total  # the speech goes on: a new utterance starts here
            self.online_fed = self.total
            self._speech_start(events)
        if self.seg_start is not None:
            self._partial(events, self.total)
        else:
            self.audio.trim(self.total - int(PREROLL_S * SAMPLE_RATE))
        return events

    def _speech_start(self, events: list[StreamEvent]) -> None:
        if self.settings.vad_events:
            events.append(StreamEvent("speech_start", "", self.seg_start / SAMPLE_RATE, self.seg_start / SAMPLE_RATE))

    def _close(self, events: list[StreamEvent], end: int) -> None:
        self._partial(events, min(end, self.total))
        if self.settings.vad_events:
            stop = min(end, self.total) / SAMPLE_RATE
            events.append(StreamEvent("speech_stop", "", self.seg_start / SAMPLE_RATE, stop))
        final = self._final(self.seg_start, end)
        if final is not None:
            events.append(final)
        self.seg_start = None

    def finish(self) -> list[StreamEvent]:
        """The client ended the utterance: close what is open. At least one final comes back (maybe empty)."""
        events: list[StreamEvent] = []
        start, end = self.audio.base, self.total
        if self.vad is None:
            with self.engine.borrowed_offline() as offline:
                audio = self.audio.slice(start, end)
                result = recognize_samples(audio, engine=offline, options=self.settings.options)
            first = result.segments[0] if result.segments else None
            events.append(
                StreamEvent(
                    "final",
                    result.text,
                    start / SAMPLE_RATE,
                    end / SAMPLE_RATE,
                    language=result.language,
                    emotion=first.emotion if first else "",
                    words=_words(result.segments, shift_s=start / SAMPLE_RATE),
                )
            )
        else:
            self.vad.flush(self.total)
            if self.seg_start is not None:
                self._close(events, self.total)
        if not any(e.kind == "final" for e in events):
            events.append(StreamEvent("final", "", start / SAMPLE_RATE, end / SAMPLE_RATE))
        self._reset()
        return events


def _words(segments, *, shift_s: float = 0.0) -> tuple[Word, ...]:
    """The words of recognized segments on the recognizer's timeline (segments recognized from `shift_s`)."""
    return tuple(
        Word(w.word, round(w.start + shift_s, 3), round(w.end + shift_s, 3))
        for seg in segments
        for w in seg.words or ()
    )
