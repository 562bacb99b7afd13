"""Audio for tests and benches: espeak-ng sentences, tones, silence, re-encoded and deliberately broken files.

`speak()` is also what scripts/train_fixture_model.py trains the fixture model on, so test audio and
training audio come from exactly the same commands (espeak-ng voice and speed, then sox to 16 kHz mono).
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SR = 16_000
REPO = Path(__file__).resolve().parent.parent
FIXTURE_MODEL = REPO / "tests" / "fixtures" / "models" / "sensevoice_trained"
SENTENCES_FILE = REPO / "tests" / "fixtures" / "models" / "sentences.json"

# The sentences the trained fixture model knows, with the exact espeak-ng voice and speed.
FIXTURE_SENTENCES = (
    {"id": "zh_park", "language": "zh", "voice": "cmn", "speed": 160, "text": "今天天气很好我们一起去公园散步吧"},
    {"id": "zh_welcome", "language": "zh", "voice": "cmn", "speed": 160, "text": "欢迎使用我们的转写服务"},
    {"id": "en_welcome", "language": "en", "voice": "en-us", "speed": 160,
     "text": "hello and welcome to the transcription service"},
)  # fmt: skip

FFMPEG_CODECS = {
    "wav": ["-c:a", "pcm_s16le"],
    "mp3": ["-c:a", "libmp3lame", "-b:a", "128k"],
    "m4a": ["-c:a", "aac", "-b:a", "128k"],
    "flac": ["-c:a", "flac"],
    "ogg": ["-c:a", "libvorbis", "-q:a", "4"],
    "opus": ["-c:a", "libopus", "-b:a", "64k"],
    "webm": ["-c:a", "libopus", "-b:a", "64k"],
    "mp4": ["-c:a", "aac", "-b:a", "128k"],
}


def sentence(sentence_id: str) -> dict:
    return next(s for s in FIXTURE_SENTENCES if s["id"] == sentence_id)


def speak(text: str, *, voice: str, speed: int = 160, pitch: int | None = None) -> np.ndarray:
    """espeak-ng speech as 16 kHz mono float32 (espeak-ng -w, then sox -r 16000 -c 1 -b 16); `pitch`: -p 0..99."""
    with tempfile.TemporaryDirectory() as tmp:
        raw, out = Path(tmp) / "raw.wav", Path(tmp) / "out.wav"
        pitched = ["-p", str(pitch)] if pitch is not None else []
        subprocess.run(["espeak-ng", "-v", voice, *pitched, "-s", str(speed), "-w", str(raw), text], check=True)
        subprocess.run(["sox", "-R", "-D", str(raw), "-r", str(SR), "-c", "1", "-b", "16", str(out)], check=True)
        return read_wav(out)


def speak_fixture(sentence_id: str) -> np.ndarray:
    s = sentence(sentence_id)
    return speak(s["text"], voice=s["voice"], speed=s["speed"])


def read_wav(path: str | Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        assert w.getsampwidth() == 2
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0
        return data.reshape(-1, w.getnchannels()).mean(axis=1).astype(np.float32)


def write_wav(path: str | Path, samples: np.ndarray, *, rate: int = SR) -> Path:
    """Write float samples in [-1, 1] (1-D mono or 2-D frames x channels) as 16-bit PCM WAV."""
    arr = np.asarray(samples, dtype=np.float32)
    channels = 1 if arr.ndim == 1 else arr.shape[1]
    pcm = (np.clip(arr, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return Path(path)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(round(seconds * SR)), dtype=np.float32)


def tone(seconds: float, *, freq: float = 440.0, rate: int = SR, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def half_silent(seconds: float, *, speech: np.ndarray, gap_s: float | None = None) -> np.ndarray:
    """Speech clips alternating with silence so that about half of `seconds` is speech."""
    gap = silence(gap_s if gap_s is not None else speech.shape[0] / SR)
    total = int(seconds * SR)
    out = np.zeros(total, dtype=np.float32)
    pos = 0
    while pos < total:
        for piece in (speech, gap):
            end = min(total, pos + piece.shape[0])
            out[pos:end] = piece[: end - pos]
            pos = end
    return out


def convert(src: str | Path, dst: str | Path, *, extra: list[str] | None = None) -> Path:
    """Re-encode with the ffmpeg CLI; the codec is chosen by the destination's extension."""
    dst = Path(dst)
    codec = FFMPEG_CODECS[dst.suffix.lstrip(".")]
    cmd = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(src), "-vn", *codec, *(extra or []), str(dst)]
    subprocess.run(cmd, check=True)
    return dst


def encode(samples: np.ndarray, dst: str | Path, *, rate: int = SR) -> Path:
    """Samples to any supported format (via a temporary WAV)."""
    dst = Path(dst)
    if dst.suffix == ".wav":
        return write_wav(dst, samples, rate=rate)
    with tempfile.TemporaryDirectory() as tmp:
        return convert(write_wav(Path(tmp) / "src.wav", samples, rate=rate), dst)


def truncate(src: str | Path, dst: str | Path, *, keep: float = 0.4) -> Path:
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: int(len(data) * keep)])
    return Path(dst)


def text_as_mp3(dst: str | Path) -> Path:
    Path(dst).write_text("This is not audio, just a text file renamed to .mp3.\n" * 50)
    return Path(dst)


def video_without_audio(dst: str | Path, *, seconds: float = 2.0) -> Path:
    cmd = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i", f"testsrc=size=64x48:rate=10:duration={seconds}",
           "-c:v", "mpeg4", "-an", str(dst)]  # fmt: skip
    subprocess.run(cmd, check=True)
    return Path(dst)


def wav_with_rate(dst: str | Path, *, rate: int, seconds_of_data: float = 1.0) -> Path:
    """A valid WAV whose header claims `rate` (e.g. 8 Hz): 16 kHz worth of bytes reads as a very long file."""
    samples = tone(seconds_of_data)
    write_wav(dst, samples, rate=SR)
    raw = bytearray(Path(dst).read_bytes())
    struct.pack_into("<II", raw, 24, rate, rate * 2)  # sample rate, byte rate
    Path(dst).write_bytes(bytes(raw))
    return Path(dst)


def many_channels(dst: str | Path, *, channels: int = 10, seconds: float = 1.0) -> Path:
    frames = np.stack([tone(seconds, freq=200.0 + 50 * c) for c in range(channels)], axis=1)
    return write_wav(dst, frames)


def has_tool(name: str) -> bool:
    return shutil.which(name) is not None


def sentences_json() -> str:
    return json.dumps({"sentences": list(FIXTURE_SENTENCES)}, ensure_ascii=False, indent=2) + "\n"


# --- containers whose headers lie about the length (billing-bypass reproductions) -------------------------

PCM_CONTAINERS = {  # extension -> ffmpeg codec arguments for 16-bit PCM in that container
    "wav": ["-c:a", "pcm_s16le"],
    "mkv": ["-c:a", "pcm_s16le"],
    "aiff": ["-c:a", "pcm_s16be"],
    "w64": ["-c:a", "pcm_s16le"],
    "caf": ["-c:a", "pcm_s16le"],
    "au": ["-c:a", "pcm_s16be"],
}


def pcm_in(samples: np.ndarray, dst: str | Path) -> Path:
    """16 kHz mono samples as 16-bit PCM in the container named by dst's extension (see PCM_CONTAINERS)."""
    dst = Path(dst)
    with tempfile.TemporaryDirectory() as tmp:
        src = write_wav(Path(tmp) / "src.wav", samples)
        codec = PCM_CONTAINERS[dst.suffix.lstrip(".")]
        subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(src), *codec, str(dst)], check=True)
    return dst


def _find(raw: bytes, marker: bytes, start: int = 0) -> int:
    at = raw.find(marker, start)
    assert at >= 0, f"{marker!r} not found in the file"
    return at


def state_length(path: str | Path, seconds: float) -> Path:
    """Overwrite the container's stated length with `seconds` (16 kHz mono 16-bit), in place; the audio stays.

    wav/w64/caf/au: the data chunk's size; aiff: COMM's frame count; mkv: the EBML Segment Duration.
    """
    path = Path(path)
    raw = bytearray(path.read_bytes())
    frames = int(round(seconds * SR))
    kind = path.suffix.lstrip(".")
    if kind == "wav":
        struct.pack_into("<I", raw, _find(raw, b"data") + 4, frames * 2)
    elif kind == "w64":  # chunk GUIDs start with the fourcc; the size (incl. the 24-byte header) follows the GUID
        struct.pack_into("<Q", raw, _find(raw, b"data\xf3\xac\xd3\x11") + 16, frames * 2 + 24)
    elif kind == "caf":  # 'data' chunk: int64 size, then a 4-byte edit count before the samples
        struct.pack_into(">q", raw, _find(raw, b"data") + 4, frames * 2 + 4)
    elif kind == "au":
        struct.pack_into(">I", raw, 8, frames * 2)
    elif kind == "aiff":
        struct.pack_into(">I", raw, _find(raw, b"COMM") + 10, frames)
    elif kind == "mkv":  # Duration (0x4489) is a float in TimecodeScale units (default 1 ms)
        at = _find(raw, b"\x44\x89")
        size = raw[at + 2] & 0x7F
        struct.pack_into(">d" if size == 8 else ">f", raw, at + 3, seconds * 1000.0)
    else:
        raise ValueError(f"no length field known for .{kind}")
    path.write_bytes(bytes(raw))
    return path


@dataclass(frozen=True)
class Decoded:
    samples: np.ndarray
    duration_s: float
    truncated: bool


def decode_all(path: str | Path, *, max_seconds: float) -> Decoded:
    """A whole file as one 16 kHz mono float32 array, through the product's streaming decoder."""
    from transcription.audio import decode_stream

    with decode_stream(path, max_seconds=max_seconds, chunk_seconds=min(300.0, max_seconds + 1)) as stream:
        parts = list(stream)
    samples = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
    return Decoded(samples=samples, duration_s=stream.duration_s, truncated=stream.truncated)
