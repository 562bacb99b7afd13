"""OpenAI-compatible `POST /v1/audio/transcriptions`: the same job and billing, answered when done.

Existing OpenAI SDK code works with `base_url=<host>/v1` and a Tingxie API key. The pieces, one module each:
openai_params (what is accepted), openai_retry (waits and retries), openai_render (answers per format),
openai_stream (stream=true), openai_models (models and translations).
"""

from __future__ import annotations

import time

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers

from portal.errors import InvalidRequest
from portal.longpoll import AwaitResponse, LongPollApiMixin
from tenants.api.base import TenantApi
from transcription import services
from transcription.api.openai_params import FORMATS, OpenAIRequest, openai_request_parse, prompt_hotwords
from transcription.api.openai_render import openai_render
from transcription.api.openai_retry import replay_since, wait_seconds, wait_until_final
from transcription.api.openai_stream import openai_stream
from transcription.api.views import reject_oversized_body
from transcription.models import Transcription


class OpenAITranscriptionSerializer(serializers.Serializer):
    """The multipart form (for the schema; openai_params checks it)."""

    file = serializers.FileField()
    model = serializers.CharField(help_text="whisper-1, gpt-4o-transcribe, ... (GET /v1/models lists them).")
    language = serializers.CharField(required=False, help_text="ISO-639: zh, en, yue, ja, ko; omit to detect.")
    prompt = serializers.CharField(required=False, help_text="Used as hotwords where the model supports them.")
    response_format = serializers.ChoiceField(choices=FORMATS, required=False, default="json")
    stream = serializers.BooleanField(required=False, default=False, help_text="Server-sent text deltas.")
    temperature = serializers.FloatField(required=False, min_value=0, max_value=1)
    timestamp_granularities = serializers.ListField(
        child=serializers.ChoiceField(choices=["segment", "word"]),
        required=False,
        help_text="With verbose_json; word where the model gives word timestamps (SenseVoice, Paraformer).",
    )


RETRY_HEADERS = [
    OpenApiParameter(
        "x-stainless-retry-count",
        OpenApiTypes.INT,
        OpenApiParameter.HEADER,
        description="Sent by the OpenAI SDKs: above 0, a retry. A retry of a request whose identical job "
        "succeeded in the last 10 minutes gets that result without a second charge.",
    ),
    OpenApiParameter(
        "x-stainless-read-timeout",
        OpenApiTypes.NUMBER,
        OpenApiParameter.HEADER,
        description="The client's read timeout in seconds: the wait ends just before it (a 504 then).",
    ),
    OpenApiParameter("Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER),
]


class OpenAITranscriptionApi(LongPollApiMixin, TenantApi):
    @extend_schema(
        request={"multipart/form-data": OpenAITranscriptionSerializer},
        parameters=RETRY_HEADERS,
        responses={
            (200, "application/json"): OpenApiResponse(
                OpenApiTypes.OBJECT,
                description="The transcript in response_format (json, verbose_json). An identical request while "
                "its job is queued or running attaches to that job (header Idempotent-Replayed: true) instead of "
                "making and billing another.",
            ),
            (200, "text/plain"): OpenApiResponse(OpenApiTypes.STR, description="response_format text, srt or vtt."),
            (200, "text/event-stream"): OpenApiResponse(
                OpenApiTypes.STR,
                description='stream=true: `data: {"type": "transcript.text.delta", "delta"}` per '
                'recognized segment, then `data: {"type": "transcript.text.done", "text", "usage"}`; '
                'a failed job ends with `data: {"error": {...}}`.',
            ),
        },
        summary="OpenAI-compatible transcription (answers when the job is done)",
    )
    def post(self, request):
        started = time.monotonic()
        reject_oversized_body(request._request)
        params = openai_request_parse(request.data)
        job = services.transcription_create(
            tenant=self.tenant,
            uploaded_file=request.data.get("file"),
            options={
                "language": params.language,
                "itn": True,
                "vad": True,
                "hotwords": prompt_hotwords(params.prompt),
                **({"diarize": True} if params.diarize else {}),
                **params.job_options(),
            },  # fmt: skip
            source=Transcription.Source.OPENAI,
            api_key=self.api_key,
            idempotency_key=request.headers.get("Idempotency-Key"),
            attach_identical=True,
            replay_since=replay_since(request),
        )
        replayed = getattr(job, "attached", False) or getattr(job, "idempotent_replay", False)
        if params.stream:
            return openai_stream(job, replayed=replayed)
        # Awaited in the event loop (LongPollApiMixin): a client waiting for its transcript holds no thread.
        return AwaitResponse(
            wait_until_final(job, timeout_s=wait_seconds(request, started=started), replayed=replayed, since=started),
            then=lambda job: self.answer(job, params, replayed=replayed),
        )

    def answer(self, job: Transcription, params: OpenAIRequest, *, replayed: bool = False) -> HttpResponse:
        """The OpenAI-shaped answer for a final job."""
        if job.status != Transcription.Status.SUCCEEDED:
            raise InvalidRequest(
                job.error_message or f"The transcription was {job.status}.",
                code=job.error_code or job.status,
                status_code=422,
                transcription_id=str(job.pk),
            )
        response = openai_render(job, params)
        if replayed:
            response["Idempotent-Replayed"] = "true"
        return response
