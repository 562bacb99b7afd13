"""Token rule v1: the public, deterministic count that every job is billed on.

After Unicode NFKC on the delivered transcript:
- each CJK character (Han, kana, hangul) is one token;
- each run of letters/digits is one token; an apostrophe between letters and `.` `,` `:`
  between digits do not split it (`don't`, `3.5`, `5:30`, `1,234.50`);
- whitespace, punctuation, symbols, emoji and model tags are free.
"""

from __future__ import annotations

import re
import unicodedata

RULE_VERSION = "v1"

_TAG = re.compile(r"<\|[^|<>]*\|>")
CJK_RANGES = (  # the one definition of "CJK" in Tingxie (the token rule and text joining use it)
    (0x3005, 0x3007),  # 々 〆 〇
    (0x3021, 0x3029),  # Hangzhou numerals
    (0x3038, 0x303B),
    (0x3040, 0x309F),  # Hiragana
    (0x30A0, 0x30FF),  # Katakana
    (0x31F0, 0x31FF),  # Katakana phonetic extensions
    (0x3400, 0x4DBF),  # Ext A
    (0x4E00, 0x9FFF),  # URO
    (0xAC00, 0xD7AF),  # Hangul syllables
    (0x1100, 0x11FF),  # Hangul jamo
    (0x3130, 0x318F),  # Hangul compatibility jamo
    (0xF900, 0xFAFF),  # Compatibility ideographs
    (0xFF66, 0xFF9F),  # Half-width katakana (NFKC maps most of these away)
    (0x20000, 0x2FA1F),  # Ext B..F, compatibility supplement
    (0x30000, 0x323AF),  # Ext G, H
)


# A regular-expression class of the same ranges (letters and marks alike), for joining and spacing text.
CJK_CLASS = "[" + "".join(f"\\U{lo:08x}-\\U{hi:08x}" for lo, hi in CJK_RANGES) + "]"


def _is_cjk(ch: str) -> bool:
    """A CJK letter or numeral; combining marks and punctuation inside these blocks are free."""
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in CJK_RANGES) and unicodedata.category(ch)[0] in ("L", "N")


def _is_word_char(ch: str) -> bool:
    return unicodedata.category(ch)[0] in ("L", "N") and not _is_cjk(ch)


def tokenize(text: str) -> list[str]:
    """The billed units of `text`, in order."""
    text = _TAG.sub(" ", unicodedata.normalize("NFKC", text or ""))
    units: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if _is_cjk(ch):
            units.append(ch)
            i += 1
            continue
        if not _is_word_char(ch):
            i += 1
            continue
        start = i
        i += 1
        while i < n:
            c = text[i]
            if _is_word_char(c):
                i += 1
                continue
            nxt = text[i + 1] if i + 1 < n else ""
            prev = text[i - 1]
            if c in "'\u2019" and prev.isalpha() and nxt.isalpha() and not _is_cjk(nxt):
                i += 1
                continue
            if c in ".,:" and prev.isdigit() and nxt.isdigit():
                i += 1
                continue
            break
        units.append(text[start:i])
    return units


def count(text: str) -> int:
    """The number of billed tokens in `text` under rule v1."""
    return len(tokenize(text))
