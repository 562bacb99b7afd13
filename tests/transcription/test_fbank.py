"""transcription.engines.fbank: Kaldi fbank for all frames at once gives kaldi-native-fbank's numbers (issue 13)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.audio_samples import silence, speak_fixture
from transcription.engines import fbank as fast

pytest.importorskip("funasr")
from funasr.utils import fbank as funasr_fbank  # noqa: E402

FRONTEND = {
    "num_mel_bins": 80,
    "frame_length": 25,
    "frame_shift": 10,
    "dither": 0.0,
    "energy_floor": 0.0,
    "window_type": "hamming",
    "sample_frequency": 16000,
}  # fmt: skip  (what funasr's WavFrontend passes)


def reference(waveform, **options):
    return funasr_fbank._fbank_knf(waveform, **options)


def speech(seconds: float) -> np.ndarray:
    unit = np.concatenate([speak_fixture("zh_welcome"), silence(0.2), speak_fixture("en_welcome")])
    return np.resize(unit, int(seconds * 16000)).astype(np.float32) * 32768


@pytest.mark.parametrize(
    "samples",
    [
        pytest.param(speech(1.7), id="speech 1.7 s"),
        pytest.param(speech(31.0), id="speech 31 s"),
        pytest.param(np.random.default_rng(1).standard_normal(27_211).astype(np.float32) * 3000, id="noise"),
        pytest.param(np.zeros(16000, dtype=np.float32), id="digital silence"),
        pytest.param(speech(0.0251), id="one frame"),
    ],
)
@pytest.mark.parametrize(
    "options",
    [
        pytest.param(FRONTEND, id="WavFrontend"),
        pytest.param({**FRONTEND, "frame_length": 21.3}, id="short-file frame length"),
        pytest.param({"num_mel_bins": 23}, id="defaults: povey window"),
        pytest.param({**FRONTEND, "low_freq": 60.0, "high_freq": -400.0, "preemphasis_coefficient": 0.9}, id="bands"),
    ],
)
def test_the_same_features_as_kaldi_native_fbank(samples, options):
    waveform = torch.from_numpy(samples).unsqueeze(0)
    expected, got = reference(waveform, **options), fast.fbank(waveform, **options)
    assert got.shape == expected.shape and got.dtype == torch.float32
    if expected.numel():  # log energies: float32 rounding differs a little in the faintest bins, nowhere else
        difference = torch.abs(got - expected)
        assert difference.max().item() < 1e-2 and difference.mean().item() < 1e-4


def test_too_short_for_a_frame_gives_no_frames():
    got = fast.fbank(torch.zeros(1, 300), **FRONTEND)
    assert got.shape == (0, 80)


def test_options_it_does_not_compute_go_to_funasr(monkeypatch):
    calls = []
    monkeypatch.setattr(fast, "_original", lambda waveform, **options: calls.append(options) or "original")
    assert fast.fbank(torch.zeros(1, 16000), **{**FRONTEND, "dither": 1.0}) == "original"
    assert fast.fbank(torch.zeros(2, 16000), **FRONTEND) == "original"  # two channels, none chosen
    assert fast.fbank(torch.zeros(1, 16000), **{**FRONTEND, "snip_edges": False}) == "original"
    assert len(calls) == 3


def test_funasr_computes_its_features_here_once_an_engine_imported_it():
    from transcription.engines.funasr_runtime import import_funasr

    import_funasr()
    assert funasr_fbank.fbank is fast.fbank
