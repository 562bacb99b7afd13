"""The one recognition path: VAD, windows cut only in silence, the engine on each window, the language vote.

Files are decoded in chunks (bounded memory); arrays (tests, benches, streams) go through the same windowing.
Recognition runs as steps, a generator per recording that yields its windows and is sent their results, so the
ASR worker can recognize the windows of several recordings in one model call (services.batching); drive() runs
the steps with an engine alone.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Generator
from dataclasses import dataclass

import numpy as np

from transcription.audio import AudioSource, decode_stream
from transcription.constants import SAMPLE_RATE
from transcription.diarize import SpeakerTrack
from transcription.engines.base import BaseEngine, EngineResult, Segment, TranscribeOptions, Window, join_texts
from transcription.vad import VAD_FRAME, speech_regions

# A window ends only in a pause at least this long: engines merge speech closer than that (FunASR: 0.5 s),
# so a cut there gives the same pieces as recognizing the whole file at once.
CUT_GAP_S = 1.0
# Silence kept before the next utterance in the carried audio: the VAD's recurrent state settles in it.
CONTEXT_S = 0.5
# The end of a chunk is always carried: speech starting there is too short for the VAD to report yet.
TAIL_S = 1.0
# Most audio carried from one chunk to the next without a pause to cut at (continuous speech, music):
# past this the window is cut anyway, so memory stays at most MAX_CARRY_S + chunk_seconds of samples.
MAX_CARRY_S = 60.0
VAD_MIN_SILENCE_MS = 200  # silence that ends a speech region


@dataclass(frozen=True)
class PipelineResult:
    text: str
    segments: tuple[Segment, ...]  # on the original timeline
    language: str
    duration_s: float  # decoded, not the header's
    truncated: bool
    decode_ms: int
    vad_ms: int
    asr_ms: int
    speech_s: float
    model: str
    windows: int = 0  # engine calls made
    warnings: tuple[str, ...] = ()  # from the engine, e.g. hotwords a model cannot use
    speaker_ms: int = 0  # speaker embeddings and clustering (diarize / voiceprints)


# Recognition as steps: yields each Window, is sent its EngineResult, returns the PipelineResult.
Steps = Generator[Window, EngineResult, "PipelineResult"]


def _align_down(n: int) -> int:
    return n - n % VAD_FRAME


def _align_up(n: int) -> int:
    return _align_down(n + VAD_FRAME - 1)


def choose_cut(regions: list[tuple[int, int]], total: int) -> int | None:
    """Where to end the window in a buffer of `total` samples, or None to carry all of it into the next chunk.

    Cuts are multiples of the VAD frame so that frames line up with a whole-file pass.
    """
    tail = _align_down(total - int(TAIL_S * SAMPLE_RATE))
    gap, context = int(CUT_GAP_S * SAMPLE_RATE), int(CONTEXT_S * SAMPLE_RATE)
    if tail > 0 and (not regions or regions[-1][1] <= tail - gap):
        return tail  # silence at the end: keep only the tail
    for (_, end), (start, _) in zip(reversed(regions[:-1]), reversed(regions[1:]), strict=True):
        if start - end >= gap:
            return _align_up(max(end, start - context))
    if total <= int(MAX_CARRY_S * SAMPLE_RATE):
        return None
    # Too long without a usable pause: cut in the widest one there is, else just before the tail.
    gaps = [(start - end, end, start) for (_, end), (start, _) in zip(regions[:-1], regions[1:], strict=True)]
    if regions and regions[-1][1] < total:
        gaps.append((total - regions[-1][1], regions[-1][1], total))
    if gaps:
        _, end, start = max(gaps)
        cut = _align_down((end + start) // 2)
        if cut > 0:
            return cut
    return max(VAD_FRAME, tail)


class _Windows:
    """Feed 16 kHz chunks in order; speech is recognized window by window, each cut in a pause (choose_cut)."""

    def __init__(
        self,
        *,
        name: str,
        options: TranscribeOptions,
        report: Callable[[float], None],
        recognized: Callable[[tuple[Segment, ...]], None] | None = None,
        speakers: SpeakerTrack | None = None,
    ) -> None:
        self.options, self.report, self.recognized = options, report, recognized
        self.speakers = speakers  # sees the same windows and regions as the engine (embeddings only are kept)
        self.vad_ns = self.asr_ms = self.windows = 0
        self.speech_s = 0.0
        self.segments: list[Segment] = []
        self.warnings: dict[str, None] = {}
        self.model = name
        self.carry = np.zeros(0, dtype=np.float32)
        self.carry_regions: list[tuple[int, int]] | None = None  # the VAD's regions of all of `carry`, if known
        self.base = 0  # where `carry` starts on the original timeline, in samples

    def _recognize(self, window: np.ndarray, regions: list[tuple[int, int]] | None, base: int) -> Steps:
        """Yield the window to whoever drives the steps (the engine, or the worker's batch) and take its result."""
        if regions is not None and not regions:
            return
        result = yield Window(audio=window, regions=regions, options=self.options, offset_s=base / SAMPLE_RATE)
        self.windows += 1
        self.asr_ms += result.asr_ms
        self.speech_s += result.speech_s
        self.model = result.model or self.model
        self.segments.extend(result.segments)
        self.warnings.update(dict.fromkeys(result.warnings))
        if self.speakers is not None:
            self.speakers.feed(window, regions, base)
        if self.recognized is not None and result.segments:
            self.recognized(tuple(result.segments))
        self.report((base + window.shape[0]) / SAMPLE_RATE)

    def _find_speech(self, window: np.ndarray) -> list[tuple[int, int]]:
        started = time.perf_counter_ns()
        found = speech_regions(window, min_silence_ms=VAD_MIN_SILENCE_MS)
        self.vad_ns += time.perf_counter_ns() - started
        return found

    def feed(self, chunk: np.ndarray) -> Steps:
        if not self.options.vad:
            yield from self._recognize(chunk, None, self.base)
            self.base += chunk.shape[0]
        else:
            buffer = np.concatenate([self.carry, chunk]) if self.carry.shape[0] else chunk
            del chunk
            self.carry, self.carry_regions = np.zeros(0, dtype=np.float32), None
            regions = self._find_speech(buffer)
            cut = choose_cut(regions, buffer.shape[0])
            if cut:
                yield from self._recognize(buffer[:cut], [(s, min(e, cut)) for s, e in regions if s < cut], self.base)
                self.carry = buffer[cut:].copy()  # a copy, so the rest of the buffer is freed now
                self.base += cut
            else:
                # All of it is carried: if no chunk follows, finish() recognizes it with these same regions.
                self.carry, self.carry_regions = buffer, regions
        self.report(self.base / SAMPLE_RATE)

    def finish(self) -> Steps:
        if self.carry.shape[0]:
            regions = self.carry_regions if self.carry_regions is not None else self._find_speech(self.carry)
            yield from self._recognize(self.carry, regions, self.base)
            self.carry, self.carry_regions = np.zeros(0, dtype=np.float32), None

    def result(self, *, duration_s: float, truncated: bool, decode_ns: int) -> PipelineResult:
        speaker_ms = 0
        if self.speakers is not None:
            started = time.perf_counter()
            self.segments = list(self.speakers.label(tuple(self.segments)))
            speaker_ms = self.speakers.embed_ms + int((time.perf_counter() - started) * 1000)
        weights: Counter[str] = Counter()
        for seg in self.segments:
            if seg.language:
                weights[seg.language] += seg.end - seg.start
        if weights:
            language = weights.most_common(1)[0][0]
        else:
            language = "" if self.options.language == "auto" else self.options.language
        return PipelineResult(
            text=join_texts([seg.text for seg in self.segments]),
            segments=tuple(self.segments),
            language=language,
            duration_s=round(duration_s, 3),
            truncated=truncated,
            decode_ms=decode_ns // 1_000_000,
            vad_ms=self.vad_ns // 1_000_000,
            asr_ms=self.asr_ms,
            speech_s=round(self.speech_s, 3),
            model=self.model,
            windows=self.windows,
            warnings=tuple(self.warnings),
            speaker_ms=speaker_ms,
        )


def _reporter(progress: Callable[[float], None] | None, expected: Callable[[], float | None]):
    """progress(0..0.99) by seconds done over the expected length, never going back."""
    reported = 0.0

    def report(done_s: float) -> None:
        nonlocal reported
        total = expected()
        if total and total > 0:
            reported = max(reported, min(0.99, done_s / total))
        if progress is not None:
            progress(reported)

    return report


def drive(steps: Steps, engine: BaseEngine) -> PipelineResult:
    """Run recognition steps with the engine alone, one window at a time."""
    try:
        window = next(steps)
        while True:
            try:
                result = engine.transcribe_regions(
                    window.audio, regions=window.regions, options=window.options, offset_s=window.offset_s
                )
            except BaseException:
                steps.close()  # the decoder's file is closed now, not at garbage collection
                raise
            window = None  # the window's samples are freed before the next chunk is decoded
            window = steps.send(result)
    except StopIteration as done:
        return done.value


def recognize_file(path: AudioSource, *, engine: BaseEngine, **kwargs) -> PipelineResult:
    """recognize_file_steps() run with the engine alone (one window at a time)."""
    return drive(recognize_file_steps(path, engine_name=engine.name, **kwargs), engine)


def recognize_file_steps(
    path: AudioSource,
    *,
    engine_name: str,
    options: TranscribeOptions,
    progress: Callable[[float], None] | None = None,
    max_seconds: float,
    expected_s: float | None = None,
    chunk_seconds: float = 300.0,
    admit: Callable[[float], None] | None = None,
    recognized: Callable[[tuple[Segment, ...]], None] | None = None,
    speakers: SpeakerTrack | None = None,
) -> Steps:
    """Transcribe a file (a path, or stored audio opened through the storage API) without ever holding all
    of its samples: a generator that yields each window (engines.base.Window) and takes back its
    EngineResult, so a worker can batch windows of several files (drive() runs it with an engine alone).

    Chunks of `chunk_seconds` are decoded one at a time; speech running past a chunk's end is carried into
    the next one (see choose_cut), and each window goes to engine.transcribe_regions with its offset, so
    segments are on the original timeline. `progress` gets 0..1 by seconds done over `expected_s` (the
    probed duration; else the header's hint), monotonic, 1.0 at the end, and at least once per chunk
    (it doubles as the job's heartbeat and may raise to abort). Decode errors are decode_stream()'s:
    UnsupportedAudio, AudioTooLong (as soon as the cap is passed), FileNotFoundError.

    `admit` gets the seconds decoded so far after each chunk is decoded and before any of it is recognized
    (the job's hold must cover them: headers can understate the length); it raises to stop the job.
    `recognized` gets each window's segments as soon as the window is recognized (before its progress call),
    so that a streamed answer can show them while the rest of the file is still being transcribed.
    """
    decode_ns = 0
    with decode_stream(path, max_seconds=max_seconds, chunk_seconds=chunk_seconds) as stream:
        windows = _Windows(
            name=engine_name,
            options=options,
            report=_reporter(progress, lambda: expected_s or stream.hint_s),
            recognized=recognized,
            speakers=speakers,
        )
        chunks = iter(stream)
        while True:
            started = time.perf_counter_ns()
            chunk = next(chunks, None)
            decode_ns += time.perf_counter_ns() - started
            if chunk is None:
                break
            if admit is not None:
                admit(stream.duration_s)
            yield from windows.feed(chunk)
            del chunk
        yield from windows.finish()
        duration_s, truncated = stream.duration_s, stream.truncated
    if progress is not None:
        progress(1.0)
    return windows.result(duration_s=duration_s, truncated=truncated, decode_ns=decode_ns)


def recognize_samples(
    samples: np.ndarray,
    *,
    engine: BaseEngine,
    options: TranscribeOptions,
    progress: Callable[[float], None] | None = None,
    chunk_seconds: float = 300.0,
    speakers: SpeakerTrack | None = None,
) -> PipelineResult:
    """recognize_file() for audio already in memory (16 kHz mono float32): the same VAD, windows and vote."""
    return drive(_samples_steps(samples, engine.name, options, progress, chunk_seconds, speakers), engine)


def _samples_steps(samples, engine_name, options, progress, chunk_seconds, speakers=None) -> Steps:
    samples = np.ascontiguousarray(samples, dtype=np.float32).reshape(-1)
    total_s = samples.shape[0] / SAMPLE_RATE
    report = _reporter(progress, lambda: total_s)
    windows = _Windows(name=engine_name, options=options, report=report, speakers=speakers)
    step = max(1, int(round(chunk_seconds * SAMPLE_RATE)))
    for start in range(0, samples.shape[0], step):
        yield from windows.feed(samples[start : start + step])
    yield from windows.finish()
    if progress is not None:
        progress(1.0)
    return windows.result(duration_s=total_s, truncated=False, decode_ns=0)
