"""Streaming recognition of a stored file: decode in chunks, cut only in silence, recognize, bounded memory."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from transcription.audio import SAMPLE_RATE, VAD_FRAME, decode_stream, speech_regions
from transcription.engines.base import BaseEngine, Segment, TranscribeOptions, join_texts

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
VAD_MIN_SILENCE_MS = 200  # as FunASREngine.transcribe()


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


def recognize_file(
    path: str | Path,
    *,
    engine: BaseEngine,
    options: TranscribeOptions,
    progress: Callable[[float], None] | None = None,
    max_seconds: float,
    expected_s: float | None = None,
    chunk_seconds: float = 300.0,
    admit: Callable[[float], None] | None = None,
) -> PipelineResult:
    """Transcribe a file without ever holding all of its samples.

    Chunks of `chunk_seconds` are decoded one at a time; speech running past a chunk's end is carried into
    the next one (see choose_cut), and each window goes to engine.transcribe_regions with its offset, so
    segments are on the original timeline. `progress` gets 0..1 by seconds done over `expected_s` (the
    probed duration; else the header's hint), monotonic, 1.0 at the end, and at least once per chunk
    (it doubles as the job's heartbeat and may raise to abort). Decode errors are decode()'s:
    UnsupportedAudio, AudioTooLong (as soon as the cap is passed), FileNotFoundError.

    `admit` gets the seconds decoded so far after each chunk is decoded and before any of it is recognized
    (the job's hold must cover them: headers can understate the length); it raises to stop the job.
    """
    decode_ns = vad_ns = 0
    asr_ms = 0
    speech_s = 0.0
    segments: list[Segment] = []
    windows = 0
    model = engine.name
    reported = 0.0

    def report(done_s: float) -> None:
        nonlocal reported
        if expected and expected > 0:
            reported = max(reported, min(0.99, done_s / expected))
        if progress is not None:
            progress(reported)

    def recognize(window: np.ndarray, regions: list[tuple[int, int]] | None, base: int) -> None:
        nonlocal asr_ms, speech_s, windows, model
        if regions is not None and not regions:
            return
        result = engine.transcribe_regions(
            window,
            regions=regions,
            options=options,
            offset_s=base / SAMPLE_RATE,
            progress=lambda f: report((base + f * window.shape[0]) / SAMPLE_RATE),
        )
        windows += 1
        asr_ms += result.asr_ms
        speech_s += result.speech_s
        model = result.model or model
        segments.extend(result.segments)

    def find_speech(window: np.ndarray) -> list[tuple[int, int]]:
        nonlocal vad_ns
        started = time.perf_counter_ns()
        found = speech_regions(window, min_silence_ms=VAD_MIN_SILENCE_MS)
        vad_ns += time.perf_counter_ns() - started
        return found

    with decode_stream(path, max_seconds=max_seconds, chunk_seconds=chunk_seconds) as stream:
        expected = expected_s or stream.hint_s
        chunks = iter(stream)
        carry = np.zeros(0, dtype=np.float32)
        base = 0  # where `carry` starts on the original timeline, in samples
        while True:
            started = time.perf_counter_ns()
            chunk = next(chunks, None)
            decode_ns += time.perf_counter_ns() - started
            if chunk is None:
                break
            if admit is not None:
                admit(stream.duration_s)
            if not options.vad:
                recognize(chunk, None, base)
                base += chunk.shape[0]
                report(base / SAMPLE_RATE)
                continue
            buffer = np.concatenate([carry, chunk]) if carry.shape[0] else chunk
            del chunk, carry
            regions = find_speech(buffer)
            cut = choose_cut(regions, buffer.shape[0])
            if cut:
                done = [(s, min(e, cut)) for s, e in regions if s < cut]
                recognize(buffer[:cut], done, base)
                carry = buffer[cut:].copy()  # a copy, so the rest of the buffer is freed now
                base += cut
            else:
                carry = buffer
            del buffer
            report(base / SAMPLE_RATE)
        if carry.shape[0]:
            recognize(carry, find_speech(carry), base)
        duration_s, truncated = stream.duration_s, stream.truncated
    if progress is not None:
        progress(1.0)

    weights: Counter[str] = Counter()
    for seg in segments:
        if seg.language:
            weights[seg.language] += seg.end - seg.start
    if weights:
        language = weights.most_common(1)[0][0]
    else:
        language = "" if options.language == "auto" else options.language
    return PipelineResult(
        text=join_texts([seg.text for seg in segments]),
        segments=tuple(segments),
        language=language,
        duration_s=round(duration_s, 3),
        truncated=truncated,
        decode_ms=decode_ns // 1_000_000,
        vad_ms=vad_ns // 1_000_000,
        asr_ms=asr_ms,
        speech_s=round(speech_s, 3),
        model=model,
        windows=windows,
    )
