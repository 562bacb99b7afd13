"""`build_test_model --kind fsmn_vad`: funasr's FsmnVADStreaming with the real dims, trained into a usable VAD."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.management import call_command

from tests.audio_samples import speak_fixture
from transcription.engines.funasr import import_funasr
from transcription.testmodels_vad import FSMN_VAD_ENCODER, build_vad_model

SR = 16000


@pytest.fixture(scope="module")
def vad(tmp_path_factory):
    out = tmp_path_factory.mktemp("vad") / "fsmn_vad"
    call_command("build_test_model", str(out), kind="fsmn_vad", seed=0)
    auto_model = import_funasr()
    return auto_model(model=str(out), device="cpu", ncpu=1, disable_update=True, disable_pbar=True, disable_log=True)


def three_sentences() -> tuple[np.ndarray, list[float]]:
    """0.5 s of silence, then three sentences each followed by 1.2 s of silence; the true speech ends (ms)."""
    parts, ends, pos = [np.zeros(SR // 2, dtype=np.float32)], [], SR // 2
    for sid in ("zh_park", "zh_welcome", "en_welcome"):
        speech = speak_fixture(sid)
        loud = np.nonzero(np.abs(speech) > 0.01)[0]
        ends.append((pos + loud[-1]) * 1000 / SR)
        parts += [speech, np.zeros(int(1.2 * SR), dtype=np.float32)]
        pos += speech.shape[0] + int(1.2 * SR)
    return np.concatenate(parts), ends


def stream(model, audio: np.ndarray, **kwargs) -> list[list[int]]:
    """Feed 60 ms PCM16 frames as funasr's runtime server does; the [start, end] pairs it reports, joined."""
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    cache: dict = {}
    segments: list[list[int]] = []
    for beg in range(0, len(pcm), 1920):
        final = beg + 1920 >= len(pcm)
        for start, end in model.generate(input=pcm[beg : beg + 1920], cache=cache, is_final=final, chunk_size=60,
                                         **kwargs)[0]["value"]:  # fmt: skip
            if start != -1:
                segments.append([start, -1])
            if end != -1:
                segments[-1][1] = end
    return segments


def test_it_has_the_real_architecture(vad):
    encoder = vad.model.encoder
    assert type(vad.model).__name__ == "FsmnVADStreaming"
    assert encoder.in_linear1.linear.weight.shape == (140, 400)
    assert encoder.out_linear2.linear.weight.shape == (FSMN_VAD_ENCODER["output_dim"], 140)
    assert len(encoder.fsmn) == 4
    assert vad.model.vad_opts.max_end_silence_time == 800


def test_it_finds_each_sentence_end_within_300_ms(vad):
    audio, ends = three_sentences()

    segments = stream(vad, audio, max_end_silence_time=500)

    assert len(segments) == 3, segments
    for (start, end), true_end in zip(segments, ends, strict=True):
        assert start < end
        assert abs(end - true_end) <= 300, (segments, ends)


@pytest.mark.parametrize("level_db", [None, -65.0])
def test_silence_and_low_noise_are_not_speech(vad, level_db):
    noise = np.random.default_rng(3).standard_normal(SR * 4) * (0 if level_db is None else 10 ** (level_db / 20))

    assert stream(vad, noise.astype(np.float32), max_end_silence_time=500) == []


def test_same_seed_same_bytes(tmp_path):
    build_vad_model(tmp_path / "a", seed=0, steps=3)
    build_vad_model(tmp_path / "b", seed=0, steps=3)
    build_vad_model(tmp_path / "c", seed=1, steps=3)

    for name in ("model.pt", "am.mvn", "config.yaml", "configuration.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a" / "model.pt").read_bytes() != (tmp_path / "c" / "model.pt").read_bytes()
