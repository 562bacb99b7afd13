"""The plainest WAV (PCM 16-bit, mono, 16 kHz, its data chunk all there) read without FFmpeg.

Opening any file through FFmpeg costs about 2 ms of CPU (format context, probe) before a sample is read; for a
short clip that is most of its decode and of its probe at submit (issue 13). A WAV that is already what the
model takes needs no decoder: its samples are read as they lie and scaled exactly as FFmpeg's s16 -> float
conversion does (x / 32768). Anything else (another rate, channels or sample format, WAVE_FORMAT_EXTENSIBLE,
a data chunk cut short or of unstated length, a damaged header) gets None here and goes through FFmpeg.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from transcription.constants import SAMPLE_RATE

_SCALE = np.float32(1 / 32768)
_HEADER_LIMIT = 64 * 1024  # the data chunk must start within this many bytes
_BLOCK_FRAMES = 1 << 13  # samples read per piece (small: a stream holds about one chunk)


@dataclass(frozen=True)
class PlainWav:
    data_offset: int
    frames: int

    @property
    def duration_s(self) -> float:
        return self.frames / SAMPLE_RATE


def _size(source) -> int:
    if isinstance(source, (str, Path)):
        return os.path.getsize(source)
    position = source.tell()
    try:
        return source.seek(0, os.SEEK_END)
    finally:
        source.seek(position)


def _read_head(source) -> bytes:
    if isinstance(source, (str, Path)):
        with open(source, "rb") as f:
            return f.read(_HEADER_LIMIT)
    source.seek(0)
    return source.read(_HEADER_LIMIT)


def plain_wav(source) -> PlainWav | None:
    """Where the samples of a plain 16 kHz mono PCM16 WAV lie; None for anything FFmpeg should read."""
    try:
        if not isinstance(source, (str, Path)) and not (hasattr(source, "seek") and source.seekable()):
            return None
        head = _read_head(source)
        size = _size(source)
    except (OSError, ValueError, AttributeError):
        return None
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    fmt_ok = False
    at = 12
    while at + 8 <= len(head):
        chunk, length = head[at : at + 4], struct.unpack_from("<I", head, at + 4)[0]
        body = at + 8
        if chunk == b"fmt ":
            if length < 16 or body + 16 > len(head):
                return None
            tag, channels, rate, byte_rate, align, bits = struct.unpack_from("<HHIIHH", head, body)
            fmt_ok = (tag, channels, rate, byte_rate, align, bits) == (1, 1, SAMPLE_RATE, 2 * SAMPLE_RATE, 2, 16)
            if not fmt_ok:
                return None
        elif chunk == b"data":
            # Stated, even, non-empty and all present: FFmpeg would read exactly these bytes.
            if not fmt_ok or length == 0 or length % 2 or body + length > size:
                return None
            return PlainWav(data_offset=body, frames=length // 2)
        at = body + length + (length & 1)  # chunks are padded to even sizes
    return None


def plain_wav_pieces(source, wav: PlainWav):
    """Yield the samples as float32 pieces, as FFmpeg's decoder and s16 -> flt conversion would give them."""
    own = isinstance(source, (str, Path))
    f = open(source, "rb") if own else source  # noqa: SIM115 - closed below when opened here
    try:
        f.seek(wav.data_offset)
        left = wav.frames
        while left:
            take = min(left, _BLOCK_FRAMES)
            raw = f.read(2 * take)
            if len(raw) < 2 * take:
                raise OSError("the WAV file shrank while it was read")
            yield np.frombuffer(raw, dtype="<i2").astype(np.float32) * _SCALE
            left -= take
    finally:
        if own:
            f.close()
