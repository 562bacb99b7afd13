"""Kaldi fbank features computed for all frames at once, the same numbers kaldi-native-fbank gives.

funasr's WavFrontend asks `funasr.utils.fbank.fbank` (torchaudio's Kaldi fbank when torchaudio is installed, else
kaldi-native-fbank, which we have) for every recording and every stream final. kaldi-native-fbank computes frame
by frame: 2.1 ms of CPU for 1.7 s of audio, half of what the tiny model's whole recognition costs (issue 13).
Here the frames are cut, cleaned (DC offset, pre-emphasis), windowed and transformed in a few array operations,
with the window and the mel filters taken from kaldi-native-fbank itself: the same features within float32
rounding (tests/transcription/test_fbank.py), in about half the time. Options this does not cover (dither,
energy, other padding...) go to funasr's own function unchanged.
"""

from __future__ import annotations

import functools

import numpy as np

# funasr.utils.fbank's defaults (torchaudio.compliance.kaldi.fbank's signature).
DEFAULTS = {
    "blackman_coeff": 0.42, "channel": -1, "dither": 0.0, "energy_floor": 1.0, "frame_length": 25.0,
    "frame_shift": 10.0, "high_freq": 0.0, "htk_compat": False, "low_freq": 20.0, "min_duration": 0.0,
    "num_mel_bins": 23, "preemphasis_coefficient": 0.97, "raw_energy": True, "remove_dc_offset": True,
    "round_to_power_of_two": True, "sample_frequency": 16000.0, "snip_edges": True, "subtract_mean": False,
    "use_energy": False, "use_log_fbank": True, "use_power": True, "vtln_high": -500.0, "vtln_low": 100.0,
    "vtln_warp": 1.0, "window_type": "povey",
}  # fmt: skip
# The options this module computes itself, and the values it needs for the rest.
REQUIRED = {
    "blackman_coeff": 0.42, "dither": 0.0, "htk_compat": False, "min_duration": 0.0, "remove_dc_offset": True,
    "round_to_power_of_two": True, "snip_edges": True, "subtract_mean": False, "use_energy": False,
    "use_log_fbank": True, "use_power": True, "vtln_warp": 1.0,
}  # fmt: skip
FLT_EPSILON = float(np.finfo(np.float32).eps)  # Kaldi's floor before the log

_original = None


def install() -> None:
    """Route funasr's feature extraction through fbank() (idempotent; call after importing funasr)."""
    global _original
    from funasr.utils import fbank as funasr_fbank

    if funasr_fbank.fbank is not fbank:
        _original = funasr_fbank.fbank
        funasr_fbank.fbank = fbank


def fbank(waveform, **options):
    """Drop-in for funasr.utils.fbank.fbank: a (frames, num_mel_bins) float32 tensor of log mel energies."""
    import torch

    opts = {**DEFAULTS, **options}
    samples = _mono(waveform, opts["channel"])
    if samples is None or any(opts[name] != value for name, value in REQUIRED.items()):
        return _fallback(waveform, options)
    plan = _plan(
        float(opts["sample_frequency"]), float(opts["frame_length"]), float(opts["frame_shift"]),
        str(opts["window_type"]), int(opts["num_mel_bins"]), float(opts["low_freq"]), float(opts["high_freq"]),
    )  # fmt: skip
    if plan is None:
        return _fallback(waveform, options)
    window, banks, size, shift, padded = plan
    x = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
    if x.shape[0] < size:
        return torch.zeros((0, int(opts["num_mel_bins"])), dtype=torch.float32)
    # torch, not numpy: its matmul runs on the engine's own thread budget (numpy's BLAS would start and spin
    # threads of its own in every worker process).
    frames = x.unfold(0, size, shift)
    frames = frames - frames.mean(dim=1, keepdim=True)
    coeff = float(opts["preemphasis_coefficient"])
    emphasized = torch.empty_like(frames)
    emphasized[:, 1:] = frames[:, 1:] - coeff * frames[:, :-1]
    emphasized[:, 0] = frames[:, 0] * (1 - coeff)
    emphasized *= window
    spectrum = torch.fft.rfft(emphasized, n=padded)
    power = spectrum.real.square() + spectrum.imag.square()
    return torch.clamp_min(power @ banks, FLT_EPSILON).log()


def _mono(waveform, channel: int):
    """The one channel as a numpy array, or None for what only the original handles."""
    import torch

    if not isinstance(waveform, torch.Tensor):
        return None
    if waveform.dim() == 2:
        if channel >= 0:
            waveform = waveform[channel]
        elif waveform.size(0) == 1:
            waveform = waveform[0]
        else:
            return None
    elif waveform.dim() != 1 or channel > 0:
        return None
    return waveform.detach().cpu().numpy().reshape(-1)


@functools.lru_cache(maxsize=64)
def _plan(samp_freq, frame_length_ms, frame_shift_ms, window_type, num_bins, low_freq, high_freq):
    """(window, mel filters as (fft bins, mel bins): tensors; window size, shift, padded size), from
    kaldi-native-fbank's own window and mel banks."""
    import kaldi_native_fbank as knf

    frame = knf.FrameExtractionOptions()
    frame.samp_freq, frame.frame_length_ms, frame.frame_shift_ms = samp_freq, frame_length_ms, frame_shift_ms
    frame.window_type, frame.dither = window_type, 0.0
    mel = knf.MelBanksOptions()
    mel.num_bins, mel.low_freq, mel.high_freq = num_bins, low_freq, high_freq
    import torch

    window = torch.tensor(np.asarray(knf.FeatureWindowFunction(frame).window, dtype=np.float32))
    size, shift = window.shape[0], int(samp_freq * 0.001 * frame_shift_ms)
    padded = 1 << max(0, (size - 1).bit_length())
    banks = torch.tensor(np.asarray(knf.MelBanks(mel, frame, 1.0).get_matrix(), dtype=np.float32).T.copy())
    if size == 0 or shift <= 0 or banks.shape[0] != padded // 2 + 1:
        return None
    return window, banks, size, shift, padded


def _fallback(waveform, options):
    if _original is not None:
        return _original(waveform, **options)
    from funasr.utils import fbank as funasr_fbank

    return funasr_fbank._fbank_knf(waveform, **options)
