"""A usable FSMN-VAD (funasr's FsmnVADStreaming) for tests and the streaming bench's peer, built offline.

Part of the testmodels developer tool (same exception: torch/funasr are imported inside functions only).
The network has the real architecture and dimensions of iic/speech_fsmn_vad_zh-cn-16k-common-pytorch (an FSMN
encoder: 400 -> 140 -> 250, four memory blocks of 128 with a 20-frame left order, 250 -> 140 -> 248 pdfs, pdf 0
is silence; features are 80 mel bins stacked 5 by 1, with an am.mvn), so a call costs what the real model costs.
Random weights would make its endpoints meaningless, so the builder trains it for a few seconds on seeded
synthetic audio (harmonic "voiced" bursts with syllable-like gaps, fricative noise, digital and low-level
silence), labelling each 10 ms frame by its energy: the result is an energy VAD inside funasr's own class and
state machine, not a speech detector. Everything else keeps funasr's defaults (max_end_silence_time 800 ms).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SR = 16000
FSMN_VAD_ENCODER = {
    "input_dim": 400,
    "input_affine_dim": 140,
    "fsmn_layers": 4,
    "linear_dim": 250,
    "proj_dim": 128,
    "lorder": 20,
    "rorder": 0,
    "lstride": 1,
    "rstride": 0,
    "output_affine_dim": 140,
    "output_dim": 248,
}
FSMN_VAD_FRONTEND = {
    "fs": SR,
    "window": "hamming",
    "n_mels": 80,
    "frame_length": 25,
    "frame_shift": 10,
    "dither": 0.0,
    "lfr_m": 5,
    "lfr_n": 1,
}
FSMN_VAD_OPTIONS = {  # the state machine's settings, funasr's defaults for this model
    "sample_rate": SR,
    "detect_mode": 1,
    "snr_mode": 0,
    "max_end_silence_time": 800,
    "max_start_silence_time": 3000,
    "do_start_point_detection": True,
    "do_end_point_detection": True,
    "window_size_ms": 200,
    "sil_to_speech_time_thres": 150,
    "speech_to_sil_time_thres": 150,
    "speech_2_noise_ratio": 1.0,
    "do_extend": 1,
    "lookback_time_start_point": 200,
    "lookahead_time_end_point": 100,
    "max_single_segment_time": 60000,
    "snr_thres": -100.0,
    "noise_frame_num_used_for_snr": 100,
    "decibel_thres": -100.0,
    "speech_noise_thres": 0.6,
    "fe_prior_thres": 0.0001,
    "silence_pdf_num": 1,
    "sil_pdf_ids": [0],
    "speech_noise_thresh_low": -0.1,
    "speech_noise_thresh_high": 0.3,
    "output_frame_probs": False,
    "frame_in_ms": 10,
    "frame_length_ms": 25,
}
SPEECH_DB = -45.0  # a 25 ms frame louder than this (RMS, dBFS) is labelled speech
SMOOTHING = 0.1
SPEECH_PDF = 1  # the class trained for speech (any pdf but 0 counts as speech)


def fsmn_vad_config() -> dict:
    return {
        "model": "FsmnVADStreaming",
        "model_conf": dict(FSMN_VAD_OPTIONS),
        "encoder": "FSMN",
        "encoder_conf": dict(FSMN_VAD_ENCODER),
        "frontend": "WavFrontendOnline",
        "frontend_conf": {**FSMN_VAD_FRONTEND, "cmvn_file": None},
    }


def _voiced(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """Harmonic bursts (one per "syllable", 120-320 ms, short gaps) at a random pitch and loudness."""
    out = []
    while sum(x.shape[0] for x in out) < seconds * SR:
        n = int(rng.uniform(0.12, 0.32) * SR)
        t = np.arange(n) / SR
        f0 = rng.uniform(90, 260) * (1 + 0.08 * np.sin(2 * np.pi * rng.uniform(2, 6) * t))
        phase = 2 * np.pi * np.cumsum(f0) / SR
        wave = sum(np.sin(k * phase) / k ** rng.uniform(0.8, 1.6) for k in range(1, 12))
        if rng.random() < 0.3:  # a fricative
            wave = rng.standard_normal(n) * np.linspace(0.3, 1.0, n) if rng.random() < 0.5 else wave
        envelope = np.sin(np.pi * np.arange(n) / n) ** rng.uniform(0.3, 1.0)
        level = 10 ** (rng.uniform(-34, -8) / 20)
        burst = wave * envelope
        out.append(burst / (np.sqrt(np.mean(burst**2)) + 1e-9) * level)
        out.append(np.zeros(int(rng.uniform(0.0, 0.07) * SR)))
    return np.concatenate(out)


def _quiet(rng: np.random.Generator, seconds: float) -> np.ndarray:
    n = int(seconds * SR)
    if rng.random() < 0.5:
        return np.zeros(n)  # digital silence
    return rng.standard_normal(n) * 10 ** (rng.uniform(-75, -55) / 20)


def training_audio(seed: int, seconds: float = 60.0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded synthetic audio and a 0/1 speech label per 10 ms frame (25 ms windows, energy above SPEECH_DB)."""
    rng = np.random.default_rng(seed)
    parts = []
    while sum(p.shape[0] for p in parts) < seconds * SR:
        parts.append(_quiet(rng, rng.uniform(0.2, 1.5)))
        parts.append(_voiced(rng, rng.uniform(0.4, 2.5)))
    audio = np.clip(np.concatenate(parts), -1, 1).astype(np.float32)
    frames = 1 + (audio.shape[0] - 400) // 160
    index = np.arange(frames)[:, None] * 160 + np.arange(400)[None, :]
    db = 10 * np.log10(np.mean(audio[index].astype(np.float64) ** 2, axis=1) + 1e-12)
    return audio, (db > SPEECH_DB).astype(np.int64)


def build_vad_model(directory: str | Path, *, seed: int = 0, steps: int = 300) -> Path:
    """Write a trained FSMN-VAD (config.yaml, configuration.json, am.mvn, model.pt) into `directory`."""
    import torch
    from funasr.frontends.wav_frontend import WavFrontend

    from transcription.testmodels import _write_yaml, build_model_object, randomize_, save_weights, write_cmvn

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    audio, labels = training_audio(seed)
    frontend = WavFrontend(cmvn_file=None, **FSMN_VAD_FRONTEND)
    with torch.no_grad():
        feats, _ = frontend(torch.from_numpy(audio)[None, :], torch.tensor([audio.shape[0]]))
    feats = feats[0][: labels.shape[0]]
    labels = torch.from_numpy(labels[: feats.shape[0]])
    mean, std = feats.mean(0), feats.std(0).clamp_min(1e-3)
    write_cmvn(out / "am.mvn", mean.numpy().astype(np.float64), std.numpy().astype(np.float64))
    _write_yaml(out / "config.yaml", fsmn_vad_config())
    metas = {"init_param": "model.pt", "config": "config.yaml", "frontend_conf": {"cmvn_file": "am.mvn"}}
    configuration = {"framework": "pytorch", "task": "voice-activity-detection", "model": {"type": "funasr"}}
    configuration["file_path_metas"] = metas
    (out / "configuration.json").write_text(json.dumps(configuration, indent=2, sort_keys=True) + "\n")

    model = build_model_object(out, seed=seed)
    randomize_(model, seed=seed)  # variance-preserving: the classes' own init fades to nothing through the FSMN
    encoder = model.encoder
    encoder.eval()
    torch.manual_seed(seed)
    with torch.no_grad():  # the seeded random layers below the output stay as they are: features for the head
        hidden = encoder.fsmn(encoder.relu(encoder.in_linear2(encoder.in_linear1(((feats - mean) / std)[None]))), {})
    targets = torch.where(labels > 0, SPEECH_PDF, 0)
    head = [*encoder.out_linear1.parameters(), *encoder.out_linear2.parameters()]
    optimizer = torch.optim.Adam(head, lr=3e-3)
    for _ in range(steps):
        log_probs = torch.log(encoder.softmax(encoder.out_linear2(encoder.out_linear1(hidden)))[0] + 1e-8)
        # label smoothing keeps every pdf above zero: funasr takes log(1 - p(silence)), which fails at p = 1.0
        loss = (1 - SMOOTHING) * torch.nn.functional.nll_loss(log_probs, targets) - SMOOTHING * log_probs.mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    save_weights(model, out / "model.pt")
    return out
