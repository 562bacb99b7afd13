"""What a FunASR model says beyond the text, when the caller asks: word timestamps and per-segment scores.

Word timestamps: the Paraformer family places each token with its CIF predictor, which funasr returns cheaply
with `output_timestamp=True` (`timestamp` only, one pair per word of the post-processed text). SenseVoiceSmall
is aligned here instead (funasr_align.py: a numpy Viterbi over the CTC log-probabilities of the blank and the
target tokens), from the same hooks as the scores; funasr's own SenseVoice alignment is never asked for.

Scores (SenseVoiceSmall only, the model whose CTC head gives them): token ids of the greedy CTC path, their
mean log-probability, and the probability of `<|nospeech|>` at the language position. Scores and SenseVoice
words are read from the model's own forward pass with hooks (the encoder's output lengths, then the CTC
projection's logits), never by running the model again: the extra work is a log-softmax over the logits funasr
computed anyway, and for words an alignment on a frames x (targets + 1) slice of it.
Like funasr.py, this module imports torch only inside functions.
"""

from __future__ import annotations

import contextlib
import re
import unicodedata
from dataclasses import dataclass

from billing.tokens import CJK_CLASS
from transcription.constants import SAMPLE_RATE
from transcription.engines.base import Segment, Word
from transcription.engines.funasr_align import SPEECH_OFFSET, align_words, targets_for
from transcription.engines.funasr_text import parse_tags

WORD_MODELS = ("SenseVoiceSmall", "Paraformer", "SeacoParaformer", "BiCifParaformer")
SCORE_MODELS = ("SenseVoiceSmall",)
SCORES_KWARG = "tingxie_scores"  # our flag in the generate() kwargs (grouping key); popped before funasr sees it
WORDS_KWARG = "tingxie_words"  # the same for SenseVoice word timestamps (aligned here, not by funasr)
SENSEVOICE_QUERIES = SPEECH_OFFSET  # language, event, emotion and text-norm positions before the speech frames
_UNIT = re.compile(f"{CJK_CLASS}|[^\\s{CJK_CLASS[1:-1]}]+")


@dataclass(frozen=True)
class Scores:
    tokens: tuple[int, ...]  # greedy CTC path over the speech frames, repeats merged, blanks removed (tags dropped)
    avg_logprob: float  # mean log-probability of the path's non-blank frames
    no_speech_prob: float | None  # probability of <|nospeech|> at the language position (None: no such token)


@dataclass(frozen=True)
class Recognized:
    """One piece's result: funasr's raw text (tags included) and what was asked for besides."""

    text: str
    words: tuple[tuple[str, int, int], ...] | None = None  # (word, start_ms, end_ms) from the piece's start
    scores: Scores | None = None


def is_punctuation(word: str) -> bool:
    return all(unicodedata.category(ch).startswith(("P", "S", "Z")) for ch in word)


def text_units(text: str) -> list[str]:
    """A Paraformer text as its timestamps count words: each CJK character, else each space-separated word."""
    return _UNIT.findall(text)


def piece_words(result: dict, model_class: str) -> tuple[tuple[str, int, int], ...] | None:
    """The words of one funasr result with their times (ms from the piece's start); None when it gave none."""
    stamps = result.get("timestamp")
    if not isinstance(stamps, list):
        return None
    if model_class == "SenseVoiceSmall":
        words = result.get("words")
    else:
        words = text_units(str(result.get("text", "")))
    if not isinstance(words, list) or len(words) != len(stamps):
        return None  # a count mismatch cannot be paired honestly
    return clean_words((word, pair[0], pair[1]) for word, pair in zip(words, stamps, strict=True))


def clean_words(timed) -> tuple[tuple[str, int, int], ...]:
    """(word, start_ms, end_ms) with sentencepiece's word-start mark removed and punctuation left out."""
    out = []
    for word, start, end in timed:
        word = str(word).replace("\u2581", "").strip()
        if word and not is_punctuation(word):
            out.append((word, int(start), int(end)))
    return tuple(out)


def recognized(results: list[dict], model_class: str, capture: ScoreCapture | None = None) -> list[Recognized]:
    """funasr's results as Recognized, in input order; scores and SenseVoice words from the capture when it has
    one per result (dropped otherwise)."""
    scores = capture.scores if capture is not None and capture.want_scores else None
    aligned = capture.words if capture is not None and capture.want_words else None
    scores = scores if scores is not None and len(scores) == len(results) else None
    aligned = aligned if aligned is not None and len(aligned) == len(results) else None
    return [
        Recognized(
            text=str(result.get("text", "")),
            words=piece_words(result, model_class) if aligned is None else aligned[i],
            scores=scores[i] if scores is not None else None,
        )
        for i, result in enumerate(results)
    ]


def piece_segments(pieces: list[tuple[int, int]], found: list[Recognized], offset: int) -> list[Segment]:
    """Segments of recognized pieces on the original timeline (`offset` samples); pieces without text dropped."""
    out = []
    for (start, end), one in zip(pieces, found, strict=True):
        text, language, emotion, events = parse_tags(one.text)
        if not text:
            continue
        base, last = (offset + start) / SAMPLE_RATE, round((offset + end) / SAMPLE_RATE, 3)
        words = None
        if one.words is not None:  # inside the piece (a predictor may place the last word past its end)
            words = tuple(
                Word(w, min(last, round(base + s / 1000, 3)), min(last, round(base + e / 1000, 3)))
                for w, s, e in one.words
            )
        scores = one.scores
        out.append(
            Segment(
                start=round(base, 3),
                end=last,
                text=text,
                language=language,
                emotion=emotion,
                events=events,
                words=words,
                tokens=scores.tokens if scores else None,
                avg_logprob=scores.avg_logprob if scores else None,
                no_speech_prob=scores.no_speech_prob if scores else None,
            )
        )
    return out


class ScoreCapture:
    """Hooks on a SenseVoiceSmall's encoder and CTC projection for the length of one generate() call.

    Each encoder forward leaves its output lengths; the CTC projection's first forward after it is reduced to
    Scores and/or aligned words per item, in input order.
    """

    def __init__(self, model, tokenizer, *, scores: bool = True, words: bool = False) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.want_scores, self.want_words = scores, words
        self.nospeech = _token_id(tokenizer, "<|nospeech|>")
        self.scores: list[Scores] = []
        self.words: list[tuple[tuple[str, int, int], ...] | None] = []
        self._lengths = None

    @contextlib.contextmanager
    def active(self):
        hooks = [
            self.model.encoder.register_forward_hook(self._encoded),
            self.model.ctc.ctc_lo.register_forward_hook(self._projected),
        ]
        try:
            yield self
        finally:
            for hook in hooks:
                hook.remove()

    def _encoded(self, module, inputs, output) -> None:
        self._lengths = output[1] if isinstance(output, tuple) and len(output) > 1 else None

    def _projected(self, module, inputs, logits) -> None:
        if self._lengths is None:
            return
        lengths, self._lengths = self._lengths, None
        self.reduce(logits, lengths)

    def reduce(self, logits, lengths) -> None:
        import torch

        with torch.no_grad():
            logprobs = torch.log_softmax(logits.float(), dim=-1)
            best, path = logprobs.max(dim=-1)
            for i, length in enumerate(lengths.tolist()):
                if self.want_scores:
                    self.scores.append(self._scores(logprobs[i], best[i], path[i], int(length)))
                if self.want_words:
                    self.words.append(self._words(logprobs[i], path[i], int(length)))

    def _scores(self, logprobs, best, path, length: int) -> Scores:
        import torch

        frames = max(0, length - SENSEVOICE_QUERIES)
        ids, probs = path[SENSEVOICE_QUERIES:][:frames], best[SENSEVOICE_QUERIES:][:frames]
        spoken = ids != self.model.blank_id
        tokens = torch.unique_consecutive(ids)
        tokens = tokens[tokens != self.model.blank_id]
        mean = float(probs[spoken].mean()) if bool(spoken.any()) else float(probs.mean()) if frames else 0.0
        nospeech = None if self.nospeech is None else round(float(logprobs[0, self.nospeech].exp()), 6)
        return Scores(tuple(int(t) for t in tokens.tolist()), round(mean, 6), nospeech)

    def _words(self, logprobs, path, length: int) -> tuple[tuple[str, int, int], ...] | None:
        """The item's words: its greedy text (tags included, as funasr decodes it) aligned to its speech frames."""
        import numpy as np
        import torch

        blank = self.model.blank_id
        tokens = torch.unique_consecutive(path[:length])
        text = self.tokenizer.decode(tokens[tokens != blank].tolist())
        pieces, ids = targets_for(self.tokenizer, text)
        if not ids:
            return None
        labels = [blank, *ids]
        speech = logprobs[SENSEVOICE_QUERIES:length]
        emissions = speech[:, torch.tensor(labels, device=speech.device)].cpu().numpy()
        blank_best = (path[SENSEVOICE_QUERIES:length] == blank).cpu().numpy()
        words = align_words(emissions, np.array(labels, dtype=np.intp), blank_best, pieces, blank)
        return None if words is None else clean_words(words)


def _token_id(tokenizer, piece: str) -> int | None:
    sp = getattr(tokenizer, "sp", None)
    if sp is None:
        return None
    token = sp.piece_to_id(piece)
    return token if sp.id_to_piece(token) == piece else None
