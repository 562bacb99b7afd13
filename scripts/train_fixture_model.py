"""Train the tiny SenseVoice fixture model so it really recognizes the espeak-ng fixture sentences.

Usage: .venv/bin/python scripts/train_fixture_model.py [OUT_DIR] [--steps 600]
Default OUT_DIR: tests/fixtures/models/sensevoice_trained. About 1-2 minutes on one CPU core.

The audio comes from tests/audio_samples.py (the same function the tests use), so training and test
audio are produced by identical espeak-ng + sox commands. Loss: cross-entropy on the 4 tag frames
(language, emotion, event, text-norm) plus CTC on the text frames, Adam, fixed seeds, one thread.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.audio_samples import FIXTURE_SENTENCES, SR, sentences_json, speak_fixture  # noqa: E402
from transcription.testmodels import (  # noqa: E402
    _FRONTEND,
    FEATURE_DIM,
    build_model_object,
    build_test_model,
    randomize_,
    save_weights,
)

SEED = 0
LANG_QUERY = {"auto": 0, "zh": 3, "en": 4}  # SenseVoiceSmall's language query ids
TEXTNORM_QUERY = {"withitn": 14, "woitn": 15}


def trim(clip: np.ndarray, *, level: float = 0.01, pad_s: float = 0.03) -> np.ndarray:
    """Cut leading/trailing quiet the way a VAD region would (keeps `pad_s`)."""
    loud = np.flatnonzero(np.abs(clip) > level)
    if loud.size == 0:
        return clip
    pad = int(pad_s * SR)
    return clip[max(0, loud[0] - pad) : loud[-1] + pad]


def variants(clip: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """The clip as the engine may see it: whole, VAD-trimmed, padded with silence, quieter, a little noisy."""
    cut = trim(clip)
    out = [clip, cut, cut * 0.4, cut + rng.standard_normal(cut.shape[0]).astype(np.float32) * 0.002]
    for _ in range(3):
        before = np.zeros(int(rng.uniform(0.0, 1.5) * SR), dtype=np.float32)
        after = np.zeros(int(rng.uniform(0.0, 1.5) * SR), dtype=np.float32)
        out.append(np.concatenate([before, cut * rng.uniform(0.5, 1.0), after]))
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
    parser.add_argument("--steps", type=int, default=600)
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
    feats = features(frontend, [it[0] for it in items])

    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    started, cpu = time.time(), time.process_time()
    for step in range(args.steps):
        # Alternate the query so the model answers both "auto" and an explicit language, with and without ITN.
        use_auto = step % 2 == 0
        itn = "withitn" if step % 4 >= 2 else "woitn"
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
