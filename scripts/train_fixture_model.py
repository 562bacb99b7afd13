"""Train the tiny SenseVoice fixture model so it really recognizes the espeak-ng fixture sentences.

Usage: .venv/bin/python scripts/train_fixture_model.py [OUT_DIR] [--steps 600]
Default OUT_DIR: tests/fixtures/models/sensevoice_trained. About 1-2 minutes on one CPU core.

The audio comes from tests/audio_samples.py (the same function the tests use), so training and test
audio are produced by identical espeak-ng + sox commands. Loss: cross-entropy on the 4 tag frames
(language, emotion, event, text-norm) plus CTC on the text frames, Adam, fixed seeds, one thread.
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

django.setup()  # transcription.audio raises the project's domain errors, which need settings

from tests.audio_samples import FIXTURE_SENTENCES, SR, sentences_json, speak_fixture  # noqa: E402
from transcription.engines.funasr import MERGE_GAP_S, plan_pieces  # noqa: E402
from transcription.testmodels import (  # noqa: E402
    _FRONTEND,
    FEATURE_DIM,
    build_model_object,
    build_test_model,
    randomize_,
    save_weights,
)
from transcription.vad import speech_regions  # noqa: E402

SEED = 0
LANG_QUERY = {"auto": 0, "zh": 3, "en": 4}  # SenseVoiceSmall's language query ids
TEXTNORM_QUERY = {"withitn": 14, "woitn": 15}


def engine_piece(clip: np.ndarray) -> tuple[int, int]:
    """The span the engine would cut out of this clip (same VAD and merging as FunASREngine.transcribe)."""
    pieces = plan_pieces(speech_regions(clip, min_silence_ms=200), merge_gap=int(MERGE_GAP_S * SR), max_len=30 * SR)
    return (pieces[0][0], pieces[-1][1]) if pieces else (0, clip.shape[0])


def variants(clip: np.ndarray, rng: np.random.Generator, count: int = 12) -> list[np.ndarray]:
    """The clip as the engine may see it: whole, as its VAD piece, and jittered, padded, quieter, noisy crops.

    The jitter matters: features are stacked 7 frames at a 60 ms stride, so a few ms of offset changes them all.
    """
    start, end = engine_piece(clip)
    out = [clip, clip[start:end]]
    for _ in range(count - 2):
        s = int(np.clip(start + rng.integers(-int(0.08 * SR), int(0.04 * SR)), 0, clip.shape[0]))
        e = int(np.clip(end + rng.integers(-int(0.04 * SR), int(0.08 * SR)), s + SR // 2, clip.shape[0]))
        piece = clip[s:e] * rng.uniform(0.4, 1.0)
        if rng.random() < 0.5:
            before = np.zeros(int(rng.uniform(0.0, 1.5) * SR), dtype=np.float32)
            after = np.zeros(int(rng.uniform(0.0, 1.5) * SR), dtype=np.float32)
            piece = np.concatenate([before, piece, after])
        if rng.random() < 0.3:
            piece = piece + rng.standard_normal(piece.shape[0]) * 0.002
        out.append(piece)
    return [v.astype(np.float32) for v in out]


def features(frontend, clips: list[np.ndarray]):
    import torch

    feats = []
    for clip in clips:
        wav = torch.from_numpy(clip)[None, :] * 1.0
        f, n = frontend(wav, torch.tensor([clip.shape[0]]))
        feats.append(f[0, : int(n[0])])
    return feats


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", nargs="?", default=str(REPO / "tests" / "fixtures" / "models" / "sensevoice_trained"))
    parser.add_argument("--steps", type=int, default=700)
    parser.add_argument("--batch", type=int, default=20)
    args = parser.parse_args()

    import sentencepiece as spm
    import torch
    import torch.nn.functional as F  # noqa: N812

    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    rng = np.random.default_rng(SEED)
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)

    clips = {s["id"]: speak_fixture(s["id"]) for s in FIXTURE_SENTENCES}
    corpus = tuple(s["text"] for s in FIXTURE_SENTENCES)

    # CMVN statistics from the raw (un-normalized) features of the fixture clips.
    from funasr.frontends.wav_frontend import WavFrontend

    raw_frontend = WavFrontend(cmvn_file=None, **_FRONTEND)
    stacked = torch.cat(features(raw_frontend, list(clips.values()))).double()
    mean = stacked.mean(0).numpy()
    std = stacked.std(0).clamp(min=1e-3).numpy()
    assert mean.shape[0] == FEATURE_DIM

    build_test_model(out, kind="sensevoice", seed=SEED, corpus=corpus, dim=64, blocks=3, units=192, cmvn=(mean, std))
    model = build_model_object(out, seed=SEED)
    randomize_(model, seed=SEED)
    frontend = WavFrontend(cmvn_file=str(out / "am.mvn"), **_FRONTEND)
    sp = spm.SentencePieceProcessor(model_file=str(out / "tokenizer.bpe.model"))

    def tag(name: str) -> int:
        return sp.piece_to_id(f"<|{name}|>")

    items = []  # (features, language, text ids, is_speech)
    for s in FIXTURE_SENTENCES:
        for clip in variants(clips[s["id"]], rng):
            items.append((clip, s["language"], sp.encode(s["text"]), True))
    for seconds in (1.0, 3.0):
        items.append((np.zeros(int(seconds * SR), dtype=np.float32), "", [], False))
    items.append(((rng.standard_normal(2 * SR) * 0.002).astype(np.float32), "", [], False))
    all_feats = features(frontend, [it[0] for it in items])
    all_items = items

    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    started, cpu = time.time(), time.process_time()
    for step in range(args.steps):
        # Alternate the query so the model answers both "auto" and an explicit language, with and without ITN.
        use_auto = step % 2 == 0
        itn = "withitn" if step % 4 >= 2 else "woitn"
        chosen = sorted(rng.choice(len(all_items), size=min(args.batch, len(all_items)), replace=False).tolist())
        items = [all_items[i] for i in chosen]
        feats = [all_feats[i] for i in chosen]
        lang_ids, targets_tags, ctc_targets, ctc_lens = [], [], [], []
        for _clip, language, ids, is_speech in items:
            lang_ids.append(LANG_QUERY["auto" if use_auto or not language else language])
            if is_speech:
                targets_tags.append([tag(language), tag("NEUTRAL"), tag("Speech"), tag(itn)])
            else:
                targets_tags.append([tag("nospeech"), tag("EMO_UNKNOWN"), tag("Event_UNK"), tag(itn)])
            ctc_targets.extend(ids)
            ctc_lens.append(len(ids))
        lengths = torch.tensor([f.shape[0] for f in feats])
        batch = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)
        n = batch.shape[0]
        queries = torch.cat(
            [
                model.embed(torch.tensor(lang_ids)[:, None]),
                model.embed(torch.tensor([[1, 2]] * n)),
                model.embed(torch.tensor([[TEXTNORM_QUERY[itn]]] * n)),
            ],
            dim=1,
        )
        encoded, enc_lens = model.encoder(torch.cat([queries, batch], dim=1), lengths + 4)
        if isinstance(encoded, tuple):
            encoded = encoded[0]
        logp = model.ctc.log_softmax(encoded)
        ce = F.nll_loss(logp[:, :4].reshape(-1, logp.shape[-1]), torch.tensor(targets_tags).reshape(-1))
        ctc = F.ctc_loss(
            logp[:, 4:].transpose(0, 1),
            torch.tensor(ctc_targets, dtype=torch.long),
            enc_lens - 4,
            torch.tensor(ctc_lens),
            blank=0,
            reduction="mean",
            zero_infinity=True,
        )
        loss = ce + ctc
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        if step % 50 == 0 or step == args.steps - 1:
            print(f"step {step:4d}  loss {loss.item():.4f}  (ce {ce.item():.4f}, ctc {ctc.item():.4f})", flush=True)
    model.eval()
    save_weights(model, out / "model.pt")
    (out.parent / "sentences.json").write_text(sentences_json())
    print(f"trained in {time.time() - started:.1f} s wall, {time.process_time() - cpu:.1f} s CPU -> {out}")


if __name__ == "__main__":
    main()
