"""Plain 16 kHz mono PCM16 WAVs are read without FFmpeg (issue 13): the same samples, length and probe as
FFmpeg gives; every other WAV still goes through FFmpeg."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest

from tests.audio_helpers_core import tone_wav
from transcription import audio
from transcription.audio_wav import plain_wav


def with_chunk_before_data(wav: bytes, chunk: bytes) -> bytes:
    """The WAV with an extra chunk (e.g. LIST) between fmt and data, RIFF size fixed up."""
    at = wav.index(b"data")
    out = wav[:at] + chunk + wav[at:]
    return out[:4] + struct.pack("<I", len(out) - 8) + out[8:]


def decoded(source, *, ffmpeg: bool, monkeypatch) -> tuple[np.ndarray, float, bool, float | None]:
    with monkeypatch.context() as m:
        if ffmpeg:
            m.setattr(audio, "plain_wav", lambda source: None)
        stream = audio.decode_stream(source, max_seconds=60, chunk_seconds=0.7)
        samples = np.concatenate(list(stream))
        return samples, stream.duration_s, stream.truncated, stream.hint_s


def probed(source, *, ffmpeg: bool, monkeypatch) -> audio.Probe:
    with monkeypatch.context() as m:
        if ffmpeg:
            m.setattr(audio, "plain_wav", lambda source: None)
        return audio.probe(source)


PLAIN = {
    "tone": tone_wav(2.3, freq=330.0),
    "odd length": tone_wav(0.0137),
    "list chunk": with_chunk_before_data(tone_wav(1.1), b"LIST" + struct.pack("<I", 5) + b"INFOa\0"),
}


@pytest.mark.parametrize("name", PLAIN)
@pytest.mark.parametrize("as_file", [False, True])
def test_a_plain_wav_reads_exactly_as_ffmpeg_reads_it(name, as_file, tmp_path, settings, monkeypatch):
    settings.MAX_AUDIO_SECONDS = 60
    path = tmp_path / "a.wav"
    path.write_bytes(PLAIN[name])

    def source():
        return io.BytesIO(PLAIN[name]) if as_file else path

    assert plain_wav(source()) is not None
    fast, slow = (
        decoded(source(), ffmpeg=False, monkeypatch=monkeypatch),
        decoded(source(), ffmpeg=True, monkeypatch=monkeypatch),
    )
    assert np.array_equal(fast[0], slow[0]) and fast[0].dtype == np.float32
    assert fast[1:] == slow[1:]
    assert probed(source(), ffmpeg=False, monkeypatch=monkeypatch) == probed(
        source(), ffmpeg=True, monkeypatch=monkeypatch
    )


def test_a_plain_wav_over_the_limit_is_refused_at_probe(tmp_path, settings):
    settings.MAX_AUDIO_SECONDS = 1
    with pytest.raises(audio.AudioTooLong):
        audio.probe(io.BytesIO(tone_wav(3.0)))


OTHERS = {
    "8 kHz": tone_wav(1.0, rate=8000),
    "stereo": tone_wav(1.0, channels=2),
    "cut short": tone_wav(1.0)[:-1000],
    "unstated length": tone_wav(1.0)[:40] + b"\0\0\0\0" + tone_wav(1.0)[44:],
    "not a wav": b"ID3" + bytes(100),
    "empty": b"",
}


@pytest.mark.parametrize("name", OTHERS)
def test_any_other_file_goes_through_ffmpeg(name):
    assert plain_wav(io.BytesIO(OTHERS[name])) is None


def test_a_cut_short_wav_still_decodes_through_ffmpeg(monkeypatch):
    samples, duration, truncated, hint = decoded(io.BytesIO(OTHERS["cut short"]), ffmpeg=False, monkeypatch=monkeypatch)
    assert samples.shape[0] == (16000 * 2 - 1000) // 2 and duration < 1.0
