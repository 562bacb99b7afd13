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


def _cues(job) -> list[dict]:
    cues = [s for s in (job.segments or []) if (s.get("text") or "").strip()]
    if not cues and job.text.strip():
        cues = [{"start": 0.0, "end": job.duration_s or 0.0, "text": job.text}]
    return cues


def to_srt(job) -> str:
    blocks = []
    for i, seg in enumerate(_cues(job), start=1):
        blocks.append(f"{i}\n{_stamp(seg['start'], ',')} --> {_stamp(seg['end'], ',')}\n{seg['text'].strip()}\n")
    return "\n".join(blocks)


def to_vtt(job) -> str:
    blocks = ["WEBVTT\n"]
    for seg in _cues(job):
        blocks.append(f"{_stamp(seg['start'], '.')} --> {_stamp(seg['end'], '.')}\n{seg['text'].strip()}\n")
    return "\n".join(blocks)


def to_json(job) -> str:
    return json.dumps(
        {
            "id": str(job.pk),
            "language": job.language,
            "duration_s": job.duration_s,
            "text": job.text,
            "segments": job.segments or [],
        },
        ensure_ascii=False,
    )


def render_transcript(*, job, fmt: str) -> tuple[str, str]:
    """(body, content type) of the job's transcript in `fmt`."""
    if fmt == "txt":
        return job.text + ("\n" if job.text else ""), "text/plain; charset=utf-8"
    if fmt == "srt":
        return to_srt(job), "application/x-subrip; charset=utf-8"
    if fmt == "vtt":
        return to_vtt(job), "text/vtt; charset=utf-8"
    if fmt == "json":
        return to_json(job), "application/json; charset=utf-8"
    raise InvalidRequest(f"Unknown format {fmt!r}; use one of: {', '.join(FORMATS)}.")
