"""SenseVoiceSmall word timestamps from the CTC log-probabilities its forward pass already computed.

funasr's own `output_timestamp=True` path recomputes the log-softmax over the whole batch for every item and
runs a Viterbi alignment as a per-frame loop of torch operations (about 5 ms per short piece on CPU, more than
the recognition of a short stream final). Here the same alignment is done on a small matrix: the speech frames'
log-probabilities of the blank and of the target tokens only (T x (S+1)), one numpy step per frame over the
whole state vector, backpointers kept as a T x (2S+1) int8 array.

It gives the words and times funasr gives for the same input (tests/transcription/test_engine_align.py): the
targets are the decoded text re-encoded by the model's tokenizer the way funasr does it, the blank's
log-probability is 0 on frames whose best token is the blank, ties prefer staying, then the previous state,
and words are joined from tokens as funasr joins them. Times are whole milliseconds computed in integers (funasr
goes through float seconds, which can land 1 ms lower).
"""

from __future__ import annotations

from itertools import groupby

import numpy as np

FRAME_MS = 60  # one encoder frame: 6 stacked 10 ms feature frames
HALF_FRAME_MS = 30  # a token's time is its frames' span moved back by half a frame
SPEECH_OFFSET = 4  # language, event, emotion and text-norm queries come before the speech frames
EMPTY_PIECE_ID = 124  # funasr's stand-in id for a token piece that re-encodes to nothing
WORD_START = "\u2581"  # sentencepiece's word-start mark


def targets_for(tokenizer, text: str) -> tuple[list[str], list[int]]:
    """The token pieces of a decoded text (its 4 leading tags dropped) and the ids they are aligned as."""
    pieces = tokenizer.text2tokens(text)[SPEECH_OFFSET:]
    ids: list[int] = []
    for encoded in tokenizer.tokens2ids(pieces):
        ids.extend(encoded if encoded else [EMPTY_PIECE_ID])
    return pieces, ids


def viterbi(emissions: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The best CTC path of `labels` through `emissions`, as the label of each frame.

    emissions: T x (S+1) log-probabilities, column 0 the blank, column k the k-th target; labels: the S+1 ids
    of those columns (blank first). States alternate blank, target 1, blank, ..., target S, blank; a state is
    reached by staying, from the state before, or (a target whose id differs from the previous target's)
    skipping the blank between them.
    """
    frames, count = emissions.shape[0], labels.shape[0] - 1
    states = 2 * count + 1
    column = np.zeros(states, dtype=np.intp)
    column[1::2] = np.arange(1, count + 1)
    state_label = labels[column]
    score_of = emissions[:, column]  # T x states
    can_skip = np.zeros(states, dtype=bool)
    can_skip[2:] = state_label[2:] != state_label[:-2]
    back = np.zeros((frames, states), dtype=np.int8)
    score = np.full(states, -np.inf, dtype=emissions.dtype)
    score[0] = score_of[0, 0]
    score[1] = score_of[0, 1]
    one, two = np.full_like(score, -np.inf), np.full_like(score, -np.inf)
    for t in range(1, frames):
        one[1:] = score[:-1]
        two[2:] = score[:-2]
        two[~can_skip] = -np.inf
        best = score.copy()
        step = back[t]
        better = one > best
        best[better] = one[better]
        step[better] = 1
        better = two > best
        best[better] = two[better]
        step[better] = 2
        score = best + score_of[t]
    state = np.empty(frames, dtype=np.intp)
    last = states - 2 + int(score[states - 1] > score[states - 2])  # the last target, or the blank after it
    state[-1] = last
    for t in range(frames - 1, 0, -1):
        state[t - 1] = state[t] - back[t, state[t]]
    return state_label[state]


def token_times(frame_labels: np.ndarray, blank: int) -> list[tuple[int, int, int]]:
    """(target index, start_ms, end_ms) for each run of a non-blank label, in order."""
    last_ms = len(frame_labels) * FRAME_MS - HALF_FRAME_MS
    out, start, index = [], 0, 0
    for label, run in groupby(frame_labels.tolist()):
        end = start + sum(1 for _ in run)
        if label != blank:
            out.append((index, max(start * FRAME_MS - HALF_FRAME_MS, 0), min(end * FRAME_MS - HALF_FRAME_MS, last_ms)))
            index += 1
        start = end
    return out


def join_words(timed: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    """Tokens to words as funasr joins them: a word-start mark begins a word, ASCII letters after ASCII letters
    continue one, anything else (a CJK character) is a word of its own; a bare mark is dropped."""
    words: list[list] = []
    previous = None
    for i, (piece, start, end) in enumerate(timed):
        if piece == WORD_START:
            continue
        if i > 0 and piece.startswith(WORD_START):
            piece = piece[1:]
            words.append([piece, start, end])
        elif i > 0 and previous is not None and _ascii_letters(previous) and _ascii_letters(piece):
            piece = previous + piece
            words[-1][0], words[-1][2] = piece, end
        else:
            words.append([piece, start, end])
        previous = piece
    return [(w, s, e) for w, s, e in words]


def _ascii_letters(text: str) -> bool:
    return text.isascii() and text.isalpha()


def align_words(emissions: np.ndarray, labels: np.ndarray, blank_best: np.ndarray, pieces: list[str], blank: int):
    """Words of one item with (start_ms, end_ms) from its speech start; None when they cannot be paired.

    emissions: speech frames x (blank, targets...) log-probabilities (float32, as funasr aligns them), labels:
    the ids of those columns, blank_best: the frames whose best token is the blank, pieces: the targets' pieces.
    """
    emissions = np.array(emissions, dtype=np.float32)
    if emissions.shape[0] == 0 or labels.shape[0] < 2:
        return None
    emissions[np.ix_(blank_best, labels == blank)] = 0.0  # funasr's rule: a blank-best frame costs no blank
    timed = []
    for index, start, end in token_times(viterbi(emissions, labels), blank):
        if index >= len(pieces):
            return None  # more aligned tokens than pieces (an id list longer than its pieces): cannot pair them
        timed.append((pieces[index], start, end))
    return join_words(timed)
