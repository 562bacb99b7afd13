"""Voice activity detection: silero's sequence ONNX model run directly with onnxruntime and numpy (no torch)."""

from __future__ import annotations

import importlib.util
import math
import threading
from pathlib import Path

import numpy as np

from transcription.constants import SAMPLE_RATE

VAD_FRAME = 512  # samples per silero frame at 16 kHz (32 ms)
VAD_CONTEXT = 64  # samples of the previous frame each frame sees
VAD_BLOCK_FRAMES = 512  # frames per ONNX call (about 16 s)
_vad_lock = threading.Lock()
_vad_session = None


def _silero_sequence_model_path() -> Path:
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("The silero-vad package is not installed (requirements/asr.txt).")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "silero_vad_16k_sequence.onnx"
    if not path.exists():
        raise RuntimeError(f"silero-vad is installed but {path.name} is missing from it.")
    return path


def _session():
    global _vad_session
    if _vad_session is None:
        with _vad_lock:
            if _vad_session is None:
                import onnxruntime

                opts = onnxruntime.SessionOptions()
                opts.intra_op_num_threads = 1
                opts.inter_op_num_threads = 1
                opts.log_severity_level = 3
                _vad_session = onnxruntime.InferenceSession(
                    str(_silero_sequence_model_path()), sess_options=opts, providers=["CPUExecutionProvider"]
                )
    return _vad_session


def speech_probabilities(samples: np.ndarray) -> np.ndarray:
    """One speech probability per 32 ms frame of 16 kHz mono audio."""
    samples = np.ascontiguousarray(samples, dtype=np.float32).reshape(-1)
    n_frames = math.ceil(samples.shape[0] / VAD_FRAME)
    probs = np.zeros(n_frames, dtype=np.float32)
    if n_frames == 0:
        return probs
    session = _session()
    h = np.zeros((1, 1, 128), dtype=np.float32)
    c = np.zeros((1, 1, 128), dtype=np.float32)
    padded_len = VAD_CONTEXT + n_frames * VAD_FRAME
    for first in range(0, n_frames, VAD_BLOCK_FRAMES):
        count = min(VAD_BLOCK_FRAMES, n_frames - first)
        # Row i is [last 64 samples of frame i-1 | frame i]; build the block from a zero-padded slice.
        lo = first * VAD_FRAME - VAD_CONTEXT
        hi = min(padded_len - VAD_CONTEXT, (first + count) * VAD_FRAME)
        piece = np.zeros(VAD_CONTEXT + count * VAD_FRAME, dtype=np.float32)
        src_lo, src_hi = max(lo, 0), min(hi, samples.shape[0])
        piece[src_lo - lo : src_hi - lo] = samples[src_lo:src_hi]
        rows = np.lib.stride_tricks.as_strided(
            piece, shape=(count, VAD_CONTEXT + VAD_FRAME), strides=(VAD_FRAME * 4, 4), writeable=False
        )
        out, h, c = session.run(None, {"input": np.ascontiguousarray(rows), "h": h, "c": c})
        probs[first : first + count] = out
    return probs


def speech_regions(
    samples: np.ndarray,
    *,
    threshold: float = 0.5,
    min_speech_ms: int = 250,
    min_silence_ms: int = 100,
    pad_ms: int = 30,
) -> list[tuple[int, int]]:
    """Speech as sorted, non-overlapping (start, end) sample ranges of 16 kHz audio.

    Hysteresis: speech starts above `threshold` and ends after `min_silence_ms` below threshold - 0.15;
    shorter-than-`min_speech_ms` bursts are dropped, and each region is padded by `pad_ms`.
    """
    total = int(np.asarray(samples).shape[0])
    if total == 0:
        return []
    probs = speech_probabilities(samples)
    low = max(threshold - 0.15, 0.01)
    min_silence = max(1, round(min_silence_ms * SAMPLE_RATE / 1000 / VAD_FRAME))
    raw: list[tuple[int, int]] = []
    start = None
    quiet = 0
    for i, p in enumerate(probs.tolist()):
        if start is None:
            if p >= threshold:
                start, quiet = i, 0
        elif p < low:
            quiet += 1
            if quiet >= min_silence:
                raw.append((start, i - quiet + 1))
                start = None
        else:
            quiet = 0
    if start is not None:
        raw.append((start, len(probs)))
    pad = int(pad_ms * SAMPLE_RATE / 1000)
    min_speech = int(min_speech_ms * SAMPLE_RATE / 1000)
    regions: list[tuple[int, int]] = []
    for first, last in raw:
        s, e = first * VAD_FRAME, min(last * VAD_FRAME, total)
        if e - s < min_speech:
            continue
        s, e = max(0, s - pad), min(total, e + pad)
        if regions and s <= regions[-1][1]:
            regions[-1] = (regions[-1][0], e)
        else:
            regions.append((s, e))
    return regions
