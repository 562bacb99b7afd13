"""Train the tiny CAM++ fixture so that its embeddings really separate espeak-ng voices.

Usage: .venv/bin/python scripts/train_speaker_model.py [OUT_DIR] [--steps 300]
Default OUT_DIR: tests/fixtures/models/campplus_trained. About 5-10 minutes on 2 CPU cores; never run in CI.

Voices and sentences come from tests/speaker_samples.py: it trains on TRAIN_VOICES x TRAIN_SENTENCES, and the
tests speak other voices (no training (voice, pitch) pair is a test voice) and other sentences. Features are
funasr's own CAM++ features of 1.5 s windows (80-bin Kaldi fbank, mean removed per window, as the diarizer
embeds them). CAM++'s 2-D convolutional front (FCM, ~90% of the compute at these widths) keeps its seeded
initial weights and runs once per window up front; the TDNN trunk and the embedding layer are trained on
random 1.0-1.5 s crops of its output: additive-margin softmax (scale 30, margin 0.2), Adam, fixed seeds.
That makes a step ~10x cheaper, which matters on a shared 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.test")

import django  # noqa: E402

django.setup()

from tests.speaker_samples import (  # noqa: E402
    EASY_PAIR,
    HARD_PAIR,
    SPEAKER_MODEL,
    TEST_VOICES,
    TRAIN_SENTENCES,
    TRAIN_VOICES,
    TURN_SENTENCES,
    say,
)
from transcription.testmodels import CAMPPLUS_TINY, build_model_object, build_speaker_model, save_weights  # noqa: E402
from transcription.vad import speech_regions  # noqa: E402

SEED = 0
SCALE, MARGIN = 30.0, 0.2


def fbank(clip: np.ndarray):
    """funasr's CAM++ features of a clip (frames x 80), mean removed (CAMPPlus.inference does the same)."""
    import torch
    from funasr.models.campplus.utils import extract_feature

    feats, _lengths, _times = extract_feature([torch.from_numpy(np.ascontiguousarray(clip))])
    return feats[0]


def windows(clip: np.ndarray) -> list[np.ndarray]:
    """The 1.5 s windows (0.5 s apart) of the clip's speech, as the diarizer cuts them."""
    from transcription.diarize import speech_windows

    regions = speech_regions(clip, min_silence_ms=200)
    spans = speech_windows([(regions[0][0], regions[-1][1])] if regions else [])
    return [clip[s:e] for s, e in spans[::2]]


def embed(model, clip: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        x = fbank(clip)
        e = model(x[None])[0].numpy()
    return e / np.linalg.norm(e)


def check(model) -> None:
    """Cosine between whole turns of the test pairs (voices and sentences never trained on)."""
    for name, pair in (("easy", EASY_PAIR), ("hard", HARD_PAIR)):
        embs = {who: [embed(model, say(t, TEST_VOICES[who])) for t in TURN_SENTENCES] for who in pair}
        a, b = (np.stack(embs[w]) for w in pair)
        within = np.mean([(a @ a.T)[np.triu_indices(6, 1)].mean(), (b @ b.T)[np.triu_indices(6, 1)].mean()])
        between = (a @ b.T).mean()
        print(f"{name}: turn cosine within {within:.3f}, between {between:.3f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", nargs="?", default=str(SPEAKER_MODEL))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch
    import torch.nn.functional as F  # noqa: N812

    torch.manual_seed(SEED)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(SEED)
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    build_speaker_model(out, seed=SEED)
    model = build_model_object(out, seed=SEED)

    started = time.time()
    model.head.requires_grad_(False)
    model.head.eval()
    items = []  # (voice, FCM output of one window: channels x frames)
    with torch.no_grad():
        for v, voice in enumerate(TRAIN_VOICES):
            for text in TRAIN_SENTENCES:
                for window in windows(say(text, voice)):
                    items.append((v, model.head(fbank(window).T[None])[0]))
    print(f"{len(items)} training windows from {len(TRAIN_VOICES)} voices in {time.time() - started:.1f} s", flush=True)
    head = torch.nn.Parameter(torch.randn(len(TRAIN_VOICES), CAMPPLUS_TINY["embedding_size"]) * 0.1)
    optimizer = torch.optim.Adam([*model.parameters(), head], lr=2e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.steps, eta_min=2e-4)
    for module in model.modules():  # activation checkpointing recomputes every dense layer: off for training
        if hasattr(module, "memory_efficient"):
            module.memory_efficient = False
    model.head.eval()
    model.train()
    model.head.eval()  # frozen: its batch-norm statistics stay those of the precomputed features
    started, cpu = time.time(), time.process_time()
    for step in range(args.steps):
        chosen = rng.choice(len(items), size=args.batch, replace=False)
        length = int(min(rng.integers(100, 151), *(items[i][1].shape[-1] for i in chosen)))
        crops, labels = [], []
        for i in chosen:
            voice, front = items[i]
            start = int(rng.integers(0, front.shape[-1] - length + 1))
            crops.append(front[:, start : start + length])
            labels.append(voice)
        emb = F.normalize(model.xvector(torch.stack(crops)), dim=1)
        cosine = emb @ F.normalize(head, dim=1).T
        target = torch.tensor(labels)
        logits = SCALE * (cosine - MARGIN * F.one_hot(target, len(TRAIN_VOICES)))
        loss = F.cross_entropy(logits, target)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        schedule.step()
        if step % 25 == 0 or step == args.steps - 1:
            print(f"step {step:4d}  loss {loss.item():.3f}  {time.time() - started:.0f} s", flush=True)
        if step % 100 == 99 and step < args.steps - 1:  # a usable checkpoint while it runs
            model.eval()
            save_weights(model, out / "model.pt")
            check(model)
            model.train()
            model.head.eval()
    model.eval()
    save_weights(model, out / "model.pt")
    print(f"trained in {time.time() - started:.1f} s wall, {time.process_time() - cpu:.1f} s CPU -> {out}")
    check(model)


if __name__ == "__main__":
    main()
