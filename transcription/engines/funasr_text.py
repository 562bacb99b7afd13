"""What the FunASR engine does around the model: SenseVoice tag parsing, CJK spacing, planning pieces and batches.

Pure functions (no funasr or torch), so they are tested without a model.
"""

from __future__ import annotations

import re

from billing.tokens import CJK_CLASS

_TAG = re.compile(r"<\|([^|<>]*)\|>")
_TAG_LANGUAGES = {"zh", "en", "yue", "ja", "ko", "nospeech"}
_TAG_EMOTIONS = {"HAPPY", "SAD", "ANGRY", "NEUTRAL", "FEARFUL", "DISGUSTED", "SURPRISED", "EMO_UNKNOWN"}
_TAG_TEXTNORM = {"withitn", "woitn"}
# Events other than plain speech become Segment.events ("bgm", "laughter", ...).
_QUIET_EVENTS = {"Speech", "Event_UNK"}


def parse_tags(raw: str) -> tuple[str, str, str, tuple[str, ...]]:
    """Split a SenseVoice result into (text, language, emotion, events); the text keeps no tags."""
    language, emotion, events = "", "", []
    for tag in _TAG.findall(raw):
        if tag in _TAG_LANGUAGES:
            language = "" if tag == "nospeech" else tag
        elif tag in _TAG_EMOTIONS:
            emotion = "" if tag == "EMO_UNKNOWN" else tag.lower()
        elif tag in _TAG_TEXTNORM or tag in _QUIET_EVENTS:
            continue
        elif tag.lower() not in events:
            events.append(tag.lower())
    text = _TAG.sub("", raw)
    return tidy_spaces(text), language, emotion, tuple(events)


# CJK characters plus CJK punctuation and full-width forms: no space belongs between two of these.
_UNSPACED = CJK_CLASS[:-1] + "\u3000-\u303f\uff00-\uffef]"
_CJK_SPACE = re.compile(f"(?<={_UNSPACED}) (?={_UNSPACED})")


def tidy_spaces(text: str) -> str:
    """Collapse whitespace and drop spaces between CJK characters (Paraformer spaces every character)."""
    return _CJK_SPACE.sub("", " ".join(text.split()))


def plan_pieces(regions: list[tuple[int, int]], *, merge_gap: int, max_len: int) -> list[tuple[int, int]]:
    """Merge close regions (up to max_len) and split any longer region into near-equal pieces."""
    merged: list[tuple[int, int]] = []
    for start, end in regions:
        if merged and start - merged[-1][1] <= merge_gap and end - merged[-1][0] <= max_len:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    pieces: list[tuple[int, int]] = []
    for start, end in merged:
        count = max(1, -(-(end - start) // max_len))
        step = -(-(end - start) // count)
        pieces.extend((s, min(end, s + step)) for s in range(start, end, step))
    return pieces


def plan_batches(pieces: list[tuple[int, int]], *, budget: int) -> list[list[tuple[int, int]]]:
    """Consecutive pieces grouped so each batch holds at most `budget` samples (and at least one piece)."""
    batches: list[list[tuple[int, int]]] = []
    size = 0
    for piece in pieces:
        length = piece[1] - piece[0]
        if batches and size + length <= budget:
            batches[-1].append(piece)
            size += length
        else:
            batches.append([piece])
            size = length
    return batches
