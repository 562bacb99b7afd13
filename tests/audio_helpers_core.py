"""Minimal numpy audio for core tests that must not depend on espeak (tones, silence, wav bytes)."""

from __future__ import annotations

import io
import wave

import numpy as np


def tone_wav(seconds: float = 1.0, *, rate: int = 16000, freq: float = 440.0, channels: int = 1) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    signal = (0.3 * np.sin(2 * np.pi * freq * t) * 32767).astype("<i2")
    if channels > 1:
        signal = np.repeat(signal[:, None], channels, axis=1).reshape(-1)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(signal.tobytes())
    return buf.getvalue()
