"""The OpenAI-shaped answers for a finished job, one function per response_format.

Only values the model produced: token ids, their mean log-probability and the no-speech probability come
from the model (SenseVoice's CTC head, see engines.funasr_details) and are null where it has none (Paraformer,
Fun-ASR-Nano, jobs made before they were recorded), never a made-up number. Usage is typed as the SDK types it per model
and format: `duration` for whisper-1 and verbose_json, `tokens` otherwise (the tokens billed).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

from django.http import HttpResponse
from rest_framework.response import Response

from portal.downloads import safe_download
from transcription.api.openai_params import OpenAIRequest, language_name
from transcription.formats import to_srt, to_vtt
from transcription.models import Transcription


def usage_tokens(job: Transcription) -> dict:
    billed = job.billed_tokens or 0
    return {"type": "tokens", "input_tokens": 0, "output_tokens": billed, "total_tokens": billed}


def usage_duration(job: Transcription) -> dict:
    return {"type": "duration", "seconds": float(job.duration_s or 0.0)}


def compression_ratio(text: str) -> float:
    """Whisper's measure of repetition: the UTF-8 text's length over its zlib-compressed length."""
    raw = text.encode()
    return round(len(raw) / len(zlib.compress(raw)), 4) if raw else 0.0


def verbose_segment(index: int, segment: dict) -> dict:
    return {
        "id": index,
        "seek": round(segment["start"] * 100),  # the window's offset in 10 ms frames: each segment is its own
        "start": segment["start"],
        "end": segment["end"],
        "text": segment["text"],
        "temperature": 0.0,  # greedy decoding, no sampling or temperature fallback
        "compression_ratio": compression_ratio(segment["text"]),
        "tokens": segment.get("tokens"),  # the model's token ids (tags dropped)
        "avg_logprob": segment.get("avg_logprob"),
        "no_speech_prob": segment.get("no_speech_prob"),
    }


def verbose_words(segments: list[dict]) -> list[dict]:
    """Every word with its times (the SDK's TranscriptionWord), in order; segments without words add none."""
    return [
        {"word": w["word"], "start": float(w["start"]), "end": float(w["end"])}
        for segment in segments
        for w in segment.get("words") or []
    ]


def render_json(job: Transcription, request: OpenAIRequest) -> Response:
    body: dict = {"text": job.text}
    if request.model == "gpt-transcribe":
        body["languages"] = [{"code": job.language}] if job.language else []
    body["usage"] = usage_duration(job) if request.usage_by_duration else usage_tokens(job)
    return Response(body)


def render_verbose_json(job: Transcription, request: OpenAIRequest) -> Response:
    segments = job.segments or []
    body: dict = {
        "task": "transcribe",
        "language": language_name(job.language),
        "duration": float(job.duration_s or 0.0),
        "text": job.text,
    }
    if request.segments:
        body["segments"] = [verbose_segment(i, s) for i, s in enumerate(segments)]
    if request.words:
        body["words"] = verbose_words(segments)
    return Response({**body, "usage": usage_duration(job)})


def _plain(body: str, job: Transcription, extension: str) -> HttpResponse:
    response = HttpResponse(body, content_type="text/plain; charset=utf-8")
    return safe_download(response, filename=f"{job.pk}.{extension}", inline=True)


def render_diarized_json(job: Transcription, request: OpenAIRequest) -> Response:
    """OpenAI's TranscriptionDiarized: segments with speaker, start, end, text (our S1, S2... labels)."""
    segments = [
        {"type": "transcript.text.segment", "id": f"seg_{i}", "start": s["start"], "end": s["end"],
         "text": s["text"], "speaker": s.get("speaker") or "unknown"}
        for i, s in enumerate(job.segments or [])
    ]  # fmt: skip
    body = {"task": "transcribe", "duration": float(job.duration_s or 0.0), "text": job.text, "segments": segments}
    return Response({**body, "usage": usage_tokens(job)})


RENDERERS: dict[str, Callable[[Transcription, OpenAIRequest], HttpResponse]] = {
    "diarized_json": render_diarized_json,
    "json": render_json,
    "verbose_json": render_verbose_json,
    "text": lambda job, request: _plain(job.text, job, "txt"),
    "srt": lambda job, request: _plain(to_srt(job), job, "srt"),
    "vtt": lambda job, request: _plain(to_vtt(job), job, "vtt"),
}


def openai_render(job: Transcription, request: OpenAIRequest) -> HttpResponse:
    """The answer for a succeeded job in the requested format."""
    response = RENDERERS[request.response_format](job, request)
    response["X-Transcription-Id"] = str(job.pk)
    return response
