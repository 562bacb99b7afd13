"""`stream=true`: Server-Sent Events exactly as OpenAI sends them for a transcription.

`data: {"type": "transcript.text.delta", "delta": ...}` for each segment as the worker recognizes it (it
writes the segments recognized so far with its heartbeat), then `data: {"type": "transcript.text.done",
"text", "usage"}` once the job succeeded. A failed job ends the stream with `data: {"error": {...}}`, which the
SDKs raise as an APIError. The events are produced in the event loop: a streaming client holds no thread,
and between polls no database connection.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

from asgiref.sync import sync_to_async
from django.db import connections
from django.http import StreamingHttpResponse

from portal.errors import error_body, openai_error_body
from transcription.api.openai_render import usage_tokens
from transcription.engines.base import join_texts
from transcription.models import Transcription

POLL_INTERVAL_S = 0.25
KEEPALIVE_S = 15.0  # an SSE comment this often keeps proxies and read timeouts from ending a quiet stream
_FIELDS = ("status", "segments", "text", "billed_tokens", "error_code", "error_message")


def _event(data: dict) -> bytes:
    return f"data: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n".encode()


def _snapshot(job_id) -> Transcription | None:
    """The job's streamed fields, read with a connection closed again at once (a stream may last hours)."""
    try:
        return Transcription.objects.filter(pk=job_id).only(*_FIELDS).first()
    finally:
        for connection in connections.all(initialized_only=True):
            if not connection.in_atomic_block:
                connection.close()


async def transcript_events(job_id) -> AsyncIterator[bytes]:
    """The SSE stream of one job, from its first recognized segment to its end."""
    sent, text = 0, ""
    quiet_since = time.monotonic()
    while True:
        job = await sync_to_async(_snapshot, thread_sensitive=False)(job_id)
        if job is None:  # deleted while streaming
            yield _event(openai_error_body(error_body("not_found", "The transcription was deleted."), 404))
            return
        segments = job.segments or []
        if job.status == Transcription.Status.SUCCEEDED or job.status == Transcription.Status.RUNNING:
            for segment in segments[sent:]:
                joined = join_texts([text, segment.get("text", "")])
                if joined != text:
                    yield _event({"type": "transcript.text.delta", "delta": joined[len(text) :]})
                    text = joined
                    quiet_since = time.monotonic()
            sent = max(sent, len(segments))
        if job.is_final:
            if job.status == Transcription.Status.SUCCEEDED:
                yield _event({"type": "transcript.text.done", "text": job.text, "usage": usage_tokens(job)})
            else:
                message = job.error_message or f"The transcription was {job.status}."
                body = error_body(job.error_code or job.status, message, transcription_id=str(job_id))
                yield _event(openai_error_body(body, 422))
            return
        if time.monotonic() - quiet_since >= KEEPALIVE_S:
            yield b": keepalive\n\n"
            quiet_since = time.monotonic()
        await asyncio.sleep(POLL_INTERVAL_S)


def openai_stream(job: Transcription, *, replayed: bool = False) -> StreamingHttpResponse:
    response = StreamingHttpResponse(transcript_events(job.pk), content_type="text/event-stream; charset=utf-8")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass events on as they come
    response["X-Transcription-Id"] = str(job.pk)
    if replayed:
        response["Idempotent-Replayed"] = "true"
    return response
