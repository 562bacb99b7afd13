"""Audio intake: probe uploads cheaply, decode them to 16 kHz mono float32 under a hard cap (no torch here).

Nothing here trusts a container header: durations come from a packet scan (probe), from a WAV header
that FFmpeg clamps to the data present, or from the samples actually decoded (decode_stream). The worker
re-checks the decoded length against the hold before recognizing (services: transcription_hold_cover).
Speech detection lives in transcription.vad.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np
from django.conf import settings

from portal.errors import AudioTooLong, DomainError, UnsupportedAudio
from transcription.audio_wav import plain_wav, plain_wav_pieces
from transcription.constants import SAMPLE_RATE

SUPPORTED_FORMATS = "wav, mp3, m4a, flac, ogg, opus, webm, mp4 (audio)"
MIN_SAMPLE_RATE = 8_000
MAX_SAMPLE_RATE = 192_000
MAX_CHANNELS = 8
# Decoders may emit a few hundred extra samples (AAC priming, resampler tails): allow this much
# over the caller's limit before calling a file too long.
CAP_GRACE_SECONDS = 0.5

_UNREADABLE = (
    "The file could not be read as audio ({reason}). Supported formats: "
    + SUPPORTED_FORMATS
    + ". Export or convert the recording to one of these and upload it again."
)


@dataclass(frozen=True)
class Probe:
    duration_s: float
    sample_rate: int
    channels: int
    codec: str
    container: str


def _unreadable(reason: str) -> UnsupportedAudio:
    return UnsupportedAudio(_UNREADABLE.format(reason=reason))


def _too_long(seconds: float, limit: float, *, at_least: bool = False) -> AudioTooLong:
    amount = f"at least {seconds:.0f}" if at_least else f"{seconds:.0f}"
    return AudioTooLong(
        f"The audio is {amount} seconds long; the limit is {limit:.0f} seconds. "
        "Split the recording into shorter parts and upload them separately.",
        duration_s=round(seconds, 3),
        max_seconds=limit,
    )


# Containers whose stated PCM length FFmpeg verifies against the data actually present (see probe()).
LENGTH_VERIFIED_CONTAINERS = frozenset({"wav"})
QUICK_PROBE = {"probesize": "32768", "analyzeduration": "0"}


def _stream_parameters_known(container) -> bool:
    audio = container.streams.audio
    if not audio:
        return False
    ctx = audio[0].codec_context
    return bool(ctx.sample_rate and ctx.channels)


# A path on this machine, or a readable, seekable binary file (stored audio opened through the storage API:
# a local file, or an object streamed from the bucket).
AudioSource = str | Path | BinaryIO


def _av_open(source: AudioSource, options: dict | None = None):
    if hasattr(source, "read"):
        source.seek(0)
        return av.open(source, mode="r", metadata_errors="ignore", options=options or {})
    return av.open(str(source), mode="r", metadata_errors="ignore", options=options or {})


def _open(source: AudioSource) -> tuple[av.container.InputContainer, av.audio.stream.AudioStream]:
    """Open a container and return its first audio stream after the sanity checks shared by probe and decode."""
    try:
        # FFmpeg's default probing (5 MB / 5 s of analysis) costs ~3.5 ms per open even for a WAV; a small
        # probe is enough when the header states the format. Fall back to the full probe otherwise.
        container = _av_open(source, QUICK_PROBE)
        if not _stream_parameters_known(container):
            container.close()
            container = _av_open(source)
    except FileNotFoundError:
        raise  # our storage lost the file: not the uploader's fault, callers handle it (e.g. "audio_missing")
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise _unreadable("unknown or damaged format") from exc
    try:
        if not container.streams.audio:
            raise UnsupportedAudio(
                "The file has no audio track (for example a video without sound). Supported formats: "
                + SUPPORTED_FORMATS
                + ". Upload a file that contains audio."
            )
        stream = container.streams.audio[0]
        rate = int(stream.codec_context.sample_rate or stream.sample_rate or 0)
        channels = int(stream.codec_context.channels or stream.channels or 0)
        if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
            raise UnsupportedAudio(
                f"The audio's sample rate is {rate} Hz; supported rates are 8,000 to 192,000 Hz. "
                "Re-export the recording at a normal rate such as 16 kHz, 44.1 kHz or 48 kHz."
            )
        if channels > MAX_CHANNELS:
            raise UnsupportedAudio(
                f"The audio has {channels} channels; at most {MAX_CHANNELS} are supported. "
                "Mix it down to mono or stereo and upload it again."
            )
    except BaseException:
        container.close()
        raise
    return container, stream


def probe(path: AudioSource) -> Probe:
    """Check an upload without decoding it: the duration is the length of the demuxed packets.

    `path` may be an open file (an upload Django holds in memory): nothing is copied to disk to probe it.

    Raises UnsupportedAudio for anything that is not usable audio and AudioTooLong when the packets add
    up to more than settings.MAX_AUDIO_SECONDS (the scan stops as soon as the limit is passed).
    """
    limit = float(settings.MAX_AUDIO_SECONDS)
    wav = plain_wav(path)
    if wav is not None:  # what FFmpeg would say of it (its WAV header is exact), without opening FFmpeg
        if wav.duration_s > limit + CAP_GRACE_SECONDS:
            raise _too_long(wav.duration_s, limit)
        return Probe(duration_s=wav.duration_s, sample_rate=SAMPLE_RATE, channels=1, codec="pcm_s16le", container="wav")
    container, stream = _open(path)
    with container:
        header_s = _header_seconds(container, stream)
        if (
            stream.codec_context.name.startswith("pcm_")
            and header_s is not None
            and container.format.name in LENGTH_VERIFIED_CONTAINERS
        ):
            # PCM in WAV: FFmpeg's WAV demuxer clamps the data chunk's length to the bytes present and never
            # reads past it, so the header is exact and a scan would read the whole file. Other containers
            # (Matroska, AIFF, AU, CAF, W64) state lengths FFmpeg does not check: those are scanned.
            duration = header_s
        else:
            duration = _scan_seconds(container, stream, limit)
            if duration is None:
                duration = header_s or 0.0
        if duration > limit + CAP_GRACE_SECONDS:
            raise _too_long(duration, limit)
        return Probe(
            duration_s=duration,
            sample_rate=int(stream.codec_context.sample_rate or stream.sample_rate),
            channels=int(stream.codec_context.channels or stream.channels),
            codec=stream.codec_context.name,
            container=container.format.name,
        )


def _scan_seconds(container, stream, limit: float) -> float | None:
    """The audio's length from a packet scan: the larger of the summed packet durations and the last
    packet's end (per-packet durations are rounded to the time base, e.g. 23 ms blocks in Matroska).

    None when packets carry no timing at all; AudioTooLong as soon as the scan passes the limit.
    """
    base = stream.time_base
    if base is None:
        return None
    # Compare in integer ticks: Fraction arithmetic per packet would dominate the scan.
    limit_ticks = int((limit + CAP_GRACE_SECONDS) / base)
    start = stream.start_time or 0
    total = last_end = 0
    packets = 0
    try:
        for packet in container.demux(stream):
            if not packet.size:
                continue  # the flush packet at the end
            packets += 1
            duration = packet.duration or 0
            total += duration
            if packet.pts is not None:
                last_end = max(last_end, packet.pts + duration - start)
            if max(total, last_end) > limit_ticks:
                raise _too_long(float(max(total, last_end) * base), limit, at_least=True)
    except av.FFmpegError:
        pass  # a damaged tail: what was demuxed so far is what decode will salvage
    if packets == 0:
        raise _unreadable("it contains no audio data")
    ticks = max(total, last_end)
    return float(ticks * base) if ticks else None


# PyAV's container.format.name -> (Content-Type, extension) for serving stored audio back to browsers.
_SERVED_TYPES = {
    "wav": ("audio/wav", "wav"),
    "mp3": ("audio/mpeg", "mp3"),
    "flac": ("audio/flac", "flac"),
    "ogg": ("audio/ogg", "ogg"),
    "matroska,webm": ("audio/webm", "webm"),
    "mov,mp4,m4a,3gp,3g2,mj2": ("audio/mp4", "m4a"),
    "aiff": ("audio/aiff", "aiff"),
    "aac": ("audio/aac", "aac"),
}
OCTET_STREAM = ("application/octet-stream", "bin")


def served_type_for_container(format_name: str | None) -> tuple[str, str]:
    """(Content-Type, extension) for a PyAV container format name; octet-stream/bin when unknown."""
    return _SERVED_TYPES.get((format_name or "").strip().lower(), OCTET_STREAM)


def served_type(path: AudioSource) -> tuple[str, str]:
    """What stored audio is served as, decided from its bytes (never the uploader's name or type)."""
    try:
        container, _stream = _open(path)
    except (DomainError, OSError, av.FFmpegError, ValueError):
        return OCTET_STREAM
    with container:
        return served_type_for_container(container.format.name)


def _header_seconds(container, stream) -> float | None:
    """The container's claimed duration: only a hint (it lies both ways, or is missing)."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    return None


class _DecodeState:
    truncated = False


def _resampled(container, stream, state: _DecodeState):
    """Yield 16 kHz mono float32 pieces (about 4096 samples each); damage sets state.truncated and stops or skips."""
    # frame_size batches output into 4096-sample frames: fewer Python round trips per second of audio.
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE, frame_size=4096)
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            break
        except av.FFmpegError:
            state.truncated = True  # the demuxer cannot go on (cut-off file)
            break
        try:
            decoded = packet.decode()
        except av.FFmpegError:
            state.truncated = True  # skip the bad packet, keep what decoded
            continue
        try:
            frames = [out for frame in decoded for out in resampler.resample(frame)]
        except ValueError:
            state.truncated = True  # the stream changed format midway (e.g. chained Ogg): keep what came before
            break
        for out in frames:
            yield out.to_ndarray().reshape(-1)
    try:
        tail = resampler.resample(None)
    except av.FFmpegError:
        state.truncated = True
        return
    for out in tail:
        if out is not None:
            yield out.to_ndarray().reshape(-1)


def _ends_early(hint: float | None, decoded_s: float) -> bool:
    # Some cut-off files (MP3 above all) end without a decoder error; the header then promises more.
    return bool(hint) and hint - decoded_s > max(1.0, 0.05 * hint)


class DecodeStream:
    """Iterate over a file's audio as 16 kHz mono float32 chunks of `chunk_seconds` (the last one shorter).

    Damaged packets are skipped and flag `truncated`, AudioTooLong is raised
    as soon as the decoded samples pass the cap, UnsupportedAudio when nothing decodes. Opening happens
    here (bad files fail before any work); `duration_s` and `truncated` are final once iteration ends
    (`finished` is then True). The stream holds at most the chunk being filled: every yielded chunk is a
    fresh array the caller owns. Iterate once; close() releases the file if iteration stops early.
    """

    def __init__(self, path: AudioSource, *, max_seconds: float, chunk_seconds: float = 300.0) -> None:
        if chunk_seconds <= 0:
            raise ValueError("chunk_seconds must be positive")
        self.max_seconds = float(max_seconds)
        self.chunk_samples = max(1, int(round(chunk_seconds * SAMPLE_RATE)))
        self._cap = int(math.ceil((self.max_seconds + CAP_GRACE_SECONDS) * SAMPLE_RATE))
        self._source, self._wav = path, plain_wav(path)
        if self._wav is not None:  # samples as they lie: no FFmpeg (transcription.audio_wav)
            self._container = self._stream = None
            self.hint_s = self._wav.duration_s
        else:
            self._container, self._stream = _open(path)
            self.hint_s = _header_seconds(self._container, self._stream)
        self.decoded_samples = 0
        self.truncated = False
        self.finished = False
        self._started = False

    @property
    def duration_s(self) -> float:
        return self.decoded_samples / SAMPLE_RATE

    def __iter__(self):
        if self._started:
            raise RuntimeError("A DecodeStream can be iterated only once.")
        self._started = True
        return self._chunks()

    def close(self) -> None:
        if self._container is not None:
            self._container.close()

    def __enter__(self) -> DecodeStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _chunks(self):
        state = _DecodeState()
        size = self.chunk_samples
        if self._wav is not None:
            pieces, opened = plain_wav_pieces(self._source, self._wav), contextlib.nullcontext()
        else:
            pieces, opened = _resampled(self._container, self._stream, state), self._container
        with opened:
            buffer = None
            filled = 0
            for piece in pieces:
                if self.decoded_samples + piece.shape[0] > self._cap:
                    raise _too_long(
                        (self.decoded_samples + piece.shape[0]) / SAMPLE_RATE, self.max_seconds, at_least=True
                    )
                self.decoded_samples += piece.shape[0]
                while piece.shape[0]:
                    if buffer is None:
                        # Allocated only when audio arrives: the previous chunk is usually released by then.
                        buffer, filled = np.empty(size, dtype=np.float32), 0
                    take = min(size - filled, piece.shape[0])
                    buffer[filled : filled + take] = piece[:take]
                    filled += take
                    piece = piece[take:]
                    if filled == size:
                        chunk, buffer = buffer, None
                        yield chunk
            if self.decoded_samples == 0:
                raise _unreadable("no audio could be decoded from it")
            self.truncated = state.truncated or _ends_early(self.hint_s, self.duration_s)
            if buffer is not None and filled:
                buffer.resize(filled, refcheck=False)
                self.finished = True
                yield buffer
        self.finished = True


def decode_stream(path: AudioSource, *, max_seconds: float, chunk_seconds: float = 300.0) -> DecodeStream:
    """Decode to 16 kHz mono float32 in chunks: iterate the result; read duration_s and truncated after the last one."""
    return DecodeStream(path, max_seconds=max_seconds, chunk_seconds=chunk_seconds)
