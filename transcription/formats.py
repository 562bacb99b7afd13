"""Transcript renderings: txt, srt, vtt, json."""

from __future__ import annotations

import json

from portal.errors import InvalidRequest

FORMATS = ("txt", "srt", "vtt", "json")


def _stamp(seconds: float, sep: str) -> str:
    ms = max(0, round(seconds * 1000))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _cues(transcription) -> list[dict]:
    cues = [s for s in (transcription.segments or []) if (s.get("text") or "").strip()]
    if not cues and transcription.text.strip():
        cues = [{"start": 0.0, "end": transcription.duration_s or 0.0, "text": transcription.text}]
    return cues


def _said(seg: dict) -> str:
    """The cue's text, after its speaker when there is one ("S1: ...")."""
    return f"{seg['speaker']}: {seg['text'].strip()}" if seg.get("speaker") else seg["text"].strip()


def _voice(name: str) -> str:
    """A WebVTT voice annotation name: no '>' or line breaks, '&' and '<' escaped."""
    clean = " ".join(name.replace(">", " ").split())
    return clean.replace("&", "&amp;").replace("<", "&lt;")


def to_txt(transcription) -> str:
    if any(seg.get("speaker") for seg in transcription.segments or []):
        return "".join(f"{_said(seg)}\n" for seg in _cues(transcription))
    return transcription.text + ("\n" if transcription.text else "")


def to_srt(transcription) -> str:
    blocks = []
    for i, seg in enumerate(_cues(transcription), start=1):
        blocks.append(f"{i}\n{_stamp(seg['start'], ',')} --> {_stamp(seg['end'], ',')}\n{_said(seg)}\n")
    return "\n".join(blocks)


def to_vtt(transcription) -> str:
    blocks = ["WEBVTT\n"]
    for seg in _cues(transcription):
        text = seg["text"].strip()
        if seg.get("speaker"):
            text = f"<v {_voice(seg['speaker'])}>{text.replace('&', '&amp;').replace('<', '&lt;')}"
        blocks.append(f"{_stamp(seg['start'], '.')} --> {_stamp(seg['end'], '.')}\n{text}\n")
    return "\n".join(blocks)


def to_json(transcription) -> str:
    return json.dumps(
        {
            "id": str(transcription.pk),
            "language": transcription.language,
            "duration_s": transcription.duration_s,
            "text": transcription.text,
            "segments": transcription.segments or [],
        },
        ensure_ascii=False,
    )


def render_transcript(*, transcription, fmt: str) -> tuple[str, str]:
    """(body, content type) of the transcription's transcript in `fmt`."""
    if fmt == "txt":
        return to_txt(transcription), "text/plain; charset=utf-8"
    if fmt == "srt":
        return to_srt(transcription), "application/x-subrip; charset=utf-8"
    if fmt == "vtt":
        return to_vtt(transcription), "text/vtt; charset=utf-8"
    if fmt == "json":
        return to_json(transcription), "application/json; charset=utf-8"
    raise InvalidRequest(f"Unknown format {fmt!r}; use one of: {', '.join(FORMATS)}.")
