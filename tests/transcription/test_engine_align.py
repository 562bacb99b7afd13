"""SenseVoice word timestamps from our own CTC alignment (transcription/engines/funasr_align.py): the same words
and times as funasr's `output_timestamp=True` for the same audio, the same path as its aligner on random
emissions, and funasr is no longer asked to align SenseVoice."""

from __future__ import annotations

import numpy as np
import pytest

from tests import audio_samples as samples
from transcription.engines.base import TranscribeOptions
from transcription.engines.funasr import FunASREngine
from transcription.engines.funasr_align import join_words, token_times, viterbi
from transcription.engines.funasr_details import WORDS_KWARG, piece_words

pytestmark = pytest.mark.slow

PLAIN = {"language": "auto", "use_itn": False}


@pytest.fixture(scope="module")
def engine():
    engine = FunASREngine(model=str(samples.FIXTURE_MODEL), device="cpu", threads=1)
    yield engine
    engine.close()


def _clips() -> list[np.ndarray]:
    zh_park, zh_welcome, en = (samples.speak_fixture(n) for n in ("zh_park", "zh_welcome", "en_welcome"))
    return [
        zh_park,
        zh_welcome,
        en,
        np.concatenate([samples.silence(0.7), en, samples.silence(0.3)]),
        zh_park[: len(zh_park) // 2],  # cut mid-sentence
        zh_welcome[4000:],  # starts late: the tiny model hears an extra word
        samples.silence(1.0),  # no text: no words
    ]


def test_sensevoice_words_are_funasrs_words_without_asking_funasr(engine):
    kwargs, _ = engine._generate_kwargs(TranscribeOptions(word_timestamps=True))
    assert kwargs.get(WORDS_KWARG) is True and "output_timestamp" not in kwargs
    clips = _clips()
    batched = engine.generate_batch(clips, {**PLAIN, WORDS_KWARG: True})
    model = engine.load()
    worded = 0
    for clip, together in zip(clips, batched, strict=True):
        ours = engine.generate_batch([clip], {**PLAIN, WORDS_KWARG: True})[0]
        theirs = model.generate(input=[clip], key=["k"], batch_size=1, output_timestamp=True, **PLAIN)[0]
        want = piece_words(theirs, "SenseVoiceSmall")
        assert ours.text == theirs["text"] and together.words == ours.words
        if want is None:
            assert ours.words is None
            continue
        assert [w for w, _, _ in ours.words] == [w for w, _, _ in want]
        for (_, start, end), (_, want_start, want_end) in zip(ours.words, want, strict=True):
            assert abs(start - want_start) <= 60 and abs(end - want_end) <= 60  # within one 60 ms frame
        worded += 1
    assert worded >= 5


def _funasr_labels(emissions: np.ndarray, targets: list[int]) -> np.ndarray:
    import torch
    from funasr.models.sense_voice.utils.ctc_alignment import ctc_forced_align

    path = ctc_forced_align(
        torch.from_numpy(emissions).unsqueeze(0),
        torch.tensor([targets]),
        torch.tensor([emissions.shape[0]]),
        torch.tensor([len(targets)]),
    )
    return path[0].numpy()


def test_viterbi_follows_funasrs_aligner_on_random_emissions():
    rng = np.random.default_rng(7)
    for _ in range(40):
        vocab, frames, count = 12, int(rng.integers(8, 60)), int(rng.integers(1, 7))
        targets = [int(x) for x in rng.integers(1, vocab, count)]
        if count > 2:
            targets[1] = targets[0]  # a repeat: the blank between them cannot be skipped
        logits = rng.standard_normal((frames, vocab)).astype(np.float32) * 3
        full = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        labels = np.array([0, *targets])
        got = viterbi(full[:, labels].astype(np.float32), labels)
        assert got.tolist() == _funasr_labels(full.astype(np.float32), targets).tolist()


def test_viterbi_on_an_obvious_case():
    labels = np.array([0, 5, 5, 7])  # blank, then a, a, b
    best = [0, 5, 5, 0, 5, 7, 7, 0]  # the frame-wise best ids happen to be a valid path
    emissions = np.full((len(best), 4), np.log(0.01), dtype=np.float32)
    for t, token in enumerate(best):
        emissions[t, labels == token] = np.log(0.9)
    frames = viterbi(emissions, labels)
    assert frames.tolist() == best
    assert token_times(frames, blank=0) == [(0, 30, 150), (1, 210, 270), (2, 270, 390)]


def test_tokens_join_into_words_as_funasr_joins_them():
    timed = [("\u2581hel", 0, 60), ("lo", 60, 120), ("\u2581", 120, 180), ("\u2581wor", 180, 240), ("ld", 240, 300)]
    timed += [("你", 300, 360), ("好", 360, 420), ("\u2581ok", 420, 480)]
    assert join_words(timed) == [
        ("\u2581hel", 0, 60),  # the first token keeps its mark, so funasr does not join what follows
        ("lo", 60, 120),
        ("world", 180, 300),
        ("你", 300, 360),
        ("好", 360, 420),
        ("ok", 420, 480),
    ]
