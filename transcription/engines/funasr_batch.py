"""Windows of several recordings recognized in shared funasr calls (the worker's cross-job batches).

The speech pieces of all windows that share generate() arguments (language, ITN, hotwords) are sorted by length
and cut into calls of at most `budget_s` seconds of padded audio and `max_items` pieces; each call is one
padded forward. Texts go back to the piece they came from, so every window gets the segments it would get alone
(word timestamps and scores included: they are per piece).
A call that raises is re-run window by window: only the window that still fails gets the exception.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from transcription.constants import SAMPLE_RATE
from transcription.engines.base import EngineResult, Window
from transcription.engines.funasr_details import Recognized, piece_segments


@dataclass
class _Plan:
    window: Window
    samples: np.ndarray
    pieces: list[tuple[int, int]]
    kwargs: dict
    warnings: tuple[str, ...]
    offset: int
    found: list[Recognized | None] = field(default_factory=list)
    asr_s: float = 0.0
    error: Exception | None = None


def _key(kwargs: dict) -> tuple:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in kwargs.items()))


def cut_calls(lengths: list[int], *, budget: int, max_items: int) -> list[list[int]]:
    """Indexes of `lengths` (sorted ascending) grouped into calls: count x longest <= budget, <= max_items each."""
    calls: list[list[int]] = []
    for index, length in enumerate(lengths):
        if calls and len(calls[-1]) < max_items and (len(calls[-1]) + 1) * length <= budget:
            calls[-1].append(index)
        else:
            calls.append([index])
    return calls


def _plan(engine, window: Window) -> _Plan:
    samples = np.ascontiguousarray(window.audio, dtype=np.float32).reshape(-1)
    total = samples.shape[0]
    found = None
    if window.regions is not None:
        found = [(max(0, int(s)), min(total, int(e))) for s, e in window.regions]
        found = [(s, e) for s, e in found if e > s]
    pieces = engine._plan(total, found)
    kwargs, warnings = engine._generate_kwargs(window.options)
    offset = int(round(window.offset_s * SAMPLE_RATE))
    return _Plan(window, samples, pieces, kwargs, warnings, offset, found=[None] * len(pieces))


def _run_call(engine, call: list[tuple[_Plan, int]], kwargs: dict) -> None:
    """One generate() over the pieces of `call`; on failure each window's pieces alone (isolation)."""
    audio = [plan.samples[plan.pieces[i][0] : plan.pieces[i][1]] for plan, i in call]
    started = time.perf_counter()
    try:
        found = engine.generate_batch(audio, kwargs)
    except Exception as exc:  # noqa: BLE001 - decided per window below
        owners = list(dict.fromkeys(id(plan) for plan, _ in call))
        if len(owners) == 1:
            call[0][0].error = exc
            return
        for owner in owners:
            _run_call(engine, [(plan, i) for plan, i in call if id(plan) == owner], kwargs)
        return
    elapsed = time.perf_counter() - started
    total = sum(a.shape[0] for a in audio) or 1
    for (plan, i), piece, one in zip(call, audio, found, strict=True):
        plan.found[i] = one
        plan.asr_s += elapsed * piece.shape[0] / total  # the call's time, shared by audio length


def transcribe_windows(engine, windows: list[Window]) -> list[EngineResult | Exception]:
    if not windows:
        return []
    try:
        engine.load()
    except Exception as exc:  # noqa: BLE001 - every window gets it
        return [exc] * len(windows)
    limits = engine.batch_limits()
    budget = max(1, int(limits.budget_s * SAMPLE_RATE))
    plans: list[_Plan | Exception] = []
    groups: dict[tuple, tuple[dict, list[tuple[_Plan, int]]]] = {}
    for window in windows:
        try:
            plan = _plan(engine, window)
        except Exception as exc:  # noqa: BLE001 - this window only
            plans.append(exc)
            continue
        plans.append(plan)
        items = groups.setdefault(_key(plan.kwargs), (plan.kwargs, []))[1]
        items.extend((plan, i) for i in range(len(plan.pieces)))
    for kwargs, items in groups.values():
        items.sort(key=lambda item: item[0].pieces[item[1]][1] - item[0].pieces[item[1]][0])
        lengths = [plan.pieces[i][1] - plan.pieces[i][0] for plan, i in items]
        for call in cut_calls(lengths, budget=budget, max_items=max(1, limits.max_items)):
            _run_call(engine, [items[j] for j in call], kwargs)
    if engine.device.startswith("cuda"):
        engine._cuda_after_job(long_job=False)  # the GPU memory gauges, once per round
    out: list[EngineResult | Exception] = []
    for plan in plans:
        if isinstance(plan, Exception):
            out.append(plan)
        elif plan.error is not None:
            out.append(plan.error)
        else:
            segments = piece_segments(plan.pieces, plan.found, plan.offset)
            out.append(
                engine.result(
                    segments,
                    plan.window.options,
                    audio_s=plan.samples.shape[0] / SAMPLE_RATE,
                    pieces=plan.pieces,
                    asr_ms=int(plan.asr_s * 1000),
                    warnings=plan.warnings,
                )
            )
    return out
