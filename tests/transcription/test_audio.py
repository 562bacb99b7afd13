"""Audio intake: probe and decode every supported format, reject bad input with useful messages, VAD regions."""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest

from portal.errors import AudioTooLong, UnsupportedAudio
from tests import audio_samples as samples
from tests.audio_samples import decode_all as decode
from transcription.audio import SAMPLE_RATE, probe
from transcription.vad import speech_probabilities, speech_regions

FORMATS = ("wav", "mp3", "m4a", "flac", "ogg", "opus", "webm", "mp4")


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """3 s of 44.1 kHz stereo tones in every supported format, plus a 60 s MP3 and a 10 min FLAC of silence."""
    root = tmp_path_factory.mktemp("media")
    left, right = samples.tone(3.0, freq=440.0, rate=44_100), samples.tone(3.0, freq=440.0, rate=44_100, amplitude=0.1)
    src = samples.write_wav(root / "src.wav", np.stack([left, right], axis=1), rate=44_100)
    files = {fmt: samples.convert(src, root / f"tone.{fmt}") for fmt in FORMATS}
    minute = samples.write_wav(root / "minute.wav", samples.tone(60.0))
    files["minute_mp3"] = samples.convert(minute, root / "minute.mp3")
    long_src = samples.write_wav(root / "long_src.wav", samples.tone(120.0))
    files["long_mp3"] = samples.convert(long_src, root / "long.mp3")
    files["long_flac"] = samples.convert(long_src, root / "long.flac")
    files["quiet_flac"] = samples.convert(
        samples.write_wav(root / "quiet.wav", samples.silence(600.0)), root / "quiet.flac"
    )
    return root, files


@pytest.mark.parametrize("fmt", FORMATS)
def test_probe_reports_duration_rate_and_channels(media, fmt):
    _, files = media

    info = probe(files[fmt])

    assert info.duration_s == pytest.approx(3.0, abs=0.1)
    assert info.sample_rate in (44_100, 48_000)  # opus always runs at 48 kHz
    assert info.channels == 2
    assert info.codec and info.container


@pytest.mark.parametrize("fmt", FORMATS)
def test_decode_gives_16k_mono_float32_of_the_right_length(media, fmt):
    _, files = media

    audio = decode(files[fmt], max_seconds=60)

    assert audio.samples.dtype == np.float32
    assert audio.samples.ndim == 1
    assert audio.duration_s == pytest.approx(3.0, abs=0.1)
    assert audio.samples.shape[0] == pytest.approx(3.0 * SAMPLE_RATE, abs=0.1 * SAMPLE_RATE)
    assert audio.truncated is False


def test_44k_stereo_is_downmixed_and_resampled_keeping_the_tone(media):
    _, files = media

    audio = decode(files["wav"], max_seconds=60)

    spectrum = np.abs(np.fft.rfft(audio.samples))
    peak_hz = np.argmax(spectrum) * SAMPLE_RATE / audio.samples.shape[0]
    assert peak_hz == pytest.approx(440.0, abs=2.0)
    # swresample's standard stereo-to-mono matrix: (L + R) / sqrt(2) for amplitudes 0.3 and 0.1
    assert float(np.abs(audio.samples).max()) == pytest.approx(0.4 / np.sqrt(2), abs=0.02)


def test_probe_is_fast_for_a_one_minute_mp3(media):
    _, files = media
    probe(files["minute_mp3"])  # warm the codec tables

    started = time.perf_counter()
    info = probe(files["minute_mp3"])
    elapsed = time.perf_counter() - started

    assert info.duration_s == pytest.approx(60.0, abs=0.1)
    assert elapsed < 0.1


def test_empty_file_is_rejected(tmp_path):
    path = tmp_path / "empty.mp3"
    path.write_bytes(b"")

    with pytest.raises(UnsupportedAudio) as excinfo:
        probe(path)

    assert "Supported formats" in excinfo.value.message
    with pytest.raises(UnsupportedAudio):
        decode(path, max_seconds=60)


def test_text_renamed_to_mp3_is_rejected_with_the_supported_formats(tmp_path):
    path = samples.text_as_mp3(tmp_path / "notes.mp3")

    with pytest.raises(UnsupportedAudio) as excinfo:
        probe(path)

    assert "wav, mp3, m4a, flac" in excinfo.value.message
    assert excinfo.value.code == "unsupported_audio"


def test_video_without_audio_is_rejected(tmp_path):
    path = samples.video_without_audio(tmp_path / "silent.mp4")

    with pytest.raises(UnsupportedAudio) as excinfo:
        probe(path)

    assert "no audio track" in excinfo.value.message
    with pytest.raises(UnsupportedAudio):
        decode(path, max_seconds=60)


def test_8_hz_wav_is_rejected_before_decoding(tmp_path):
    path = samples.wav_with_rate(tmp_path / "8hz.wav", rate=8)

    with pytest.raises(UnsupportedAudio) as excinfo:
        probe(path)

    assert "8 Hz" in excinfo.value.message
    with pytest.raises(UnsupportedAudio):
        decode(path, max_seconds=14_400)


def test_more_than_8_channels_is_rejected(tmp_path):
    path = samples.many_channels(tmp_path / "ten.wav", channels=10)

    with pytest.raises(UnsupportedAudio) as excinfo:
        probe(path)

    assert "10 channels" in excinfo.value.message


def test_missing_file_raises_file_not_found_for_the_caller_to_handle(tmp_path):
    with pytest.raises(FileNotFoundError):
        probe(tmp_path / "nope.wav")
    with pytest.raises(FileNotFoundError):
        decode(tmp_path / "nope.wav", max_seconds=60)


def test_too_long_for_the_setting_is_rejected_by_probe(media, settings):
    _, files = media
    settings.MAX_AUDIO_SECONDS = 30

    with pytest.raises(AudioTooLong) as excinfo:
        probe(files["long_mp3"])

    assert "limit is 30 seconds" in excinfo.value.message
    assert excinfo.value.status_code == 413


def test_decode_enforces_the_cap_on_decoded_samples(media):
    _, files = media

    with pytest.raises(AudioTooLong):
        decode(files["long_flac"], max_seconds=30)


def test_decode_memory_stays_bounded_by_the_cap(media):
    _, files = media  # 10 min of silence: 38 MB as float32 if it were all decoded
    tracemalloc.start()
    try:
        with pytest.raises(AudioTooLong):
            decode(files["quiet_flac"], max_seconds=60)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < 12 * 1024 * 1024  # 60.5 s of float32 is 3.9 MB; growth by realloc stays well below 12 MB


@pytest.mark.parametrize("fmt", ["mp3", "flac"])
def test_truncated_file_is_salvaged_and_flagged(media, tmp_path, fmt):
    _, files = media
    cut = samples.truncate(files[f"long_{fmt}"], tmp_path / f"cut.{fmt}", keep=0.4)

    audio = decode(cut, max_seconds=600)

    assert audio.truncated is True
    assert 30.0 < audio.duration_s < 70.0  # about 40% of 120 s survives
    assert probe(cut).duration_s == pytest.approx(audio.duration_s, abs=1.0)  # packets, not the header's 120 s


def test_speech_regions_find_speech_between_silences():
    speech = samples.speak_fixture("en_welcome")
    audio = np.concatenate([samples.silence(2.0), speech, samples.silence(3.0), speech, samples.silence(1.0)])

    regions = speech_regions(audio)

    assert regions
    assert regions[0][0] >= 1.8 * SAMPLE_RATE
    assert regions[-1][1] <= audio.shape[0] - 0.8 * SAMPLE_RATE
    kept = sum(e - s for s, e in regions) / SAMPLE_RATE
    assert 0.6 * 2 * speech.shape[0] / SAMPLE_RATE < kept < 1.2 * 2 * speech.shape[0] / SAMPLE_RATE
    assert all(a[1] < b[0] for a, b in zip(regions, regions[1:], strict=False))


def test_speech_regions_on_silence_and_empty_audio():
    assert speech_regions(samples.silence(3.0)) == []
    assert speech_regions(np.zeros(0, dtype=np.float32)) == []
    assert speech_probabilities(samples.silence(1.0)).shape == (32,)
