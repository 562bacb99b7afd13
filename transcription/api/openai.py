"""OpenAI-compatible `POST /v1/audio/transcriptions`: the same job and billing, answered when done.

Existing OpenAI SDK code works with `base_url=<host>/v1` and a Tingxie API key.
"""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from portal.errors import InvalidRequest
from portal.longpoll import AwaitResponse, LongPollApiMixin
from tenants.api.base import TenantApi
from transcription import services
from transcription.api.openai_retry import replay_since, wait_seconds, wait_until_final
from transcription.api.views import reject_oversized_body
from transcription.formats import to_srt, to_vtt
from transcription.models import Transcription

MODELS = ("whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe", "sensevoice", "tingxie-default")
LANGUAGE_MAP = {"": "auto", "auto": "auto", "zh": "zh", "en": "en", "yue": "yue", "ja": "ja", "ko": "ko"}


class OpenAITranscriptionSerializer(serializers.Serializer):
    file = serializers.FileField()
    model = serializers.CharField()
    language = serializers.CharField(required=False, allow_blank=True, default="")
    prompt = serializers.CharField(required=False, allow_blank=True, default="")
    response_format = serializers.ChoiceField(choices=["json", "text", "srt", "vtt", "verbose_json"], default="json")
    temperature = serializers.FloatField(required=False)

    def validate_model(self, value: str) -> str:
        if value not in MODELS:
            raise serializers.ValidationError(f"Unknown model {value!r}; use one of: {', '.join(MODELS)}.")
        return value

    def validate_language(self, value: str) -> str:
        value = (value or "").strip().lower()
        if value not in LANGUAGE_MAP:
            raise serializers.ValidationError("Supported languages: zh, en, yue, ja, ko (or omit for auto-detect).")
        return LANGUAGE_MAP[value]


def _usage(job: Transcription) -> dict:
    billed = job.billed_tokens or 0
    return {"type": "tokens", "input_tokens": 0, "output_tokens": billed, "total_tokens": billed}


class OpenAITranscriptionApi(LongPollApiMixin, TenantApi):
    @extend_schema(
        request={"multipart/form-data": OpenAITranscriptionSerializer},
        responses={200: dict},
        summary="OpenAI-compatible transcription (answers when the job is done)",
    )
    def post(self, request):
        reject_oversized_body(request._request)
        serializer = OpenAITranscriptionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        job = services.transcription_create(
            tenant=self.tenant,
            uploaded_file=data["file"],
            options={"language": data["language"], "itn": True, "vad": True},
            source=Transcription.Source.OPENAI,
            api_key=self.api_key,
            idempotency_key=request.headers.get("Idempotency-Key"),
            attach_identical=True,
            replay_since=replay_since(request),
        )
        replayed = getattr(job, "attached", False) or getattr(job, "idempotent_replay", False)
        # Awaited in the event loop (LongPollApiMixin): a client waiting for its transcript holds no thread.
        return AwaitResponse(
            wait_until_final(job, timeout_s=wait_seconds(request), replayed=replayed),
            then=lambda job: self.answer(job, data, replayed=replayed),
        )

    def answer(self, job: Transcription, data: dict, *, replayed: bool = False) -> Response:
        response = self.render(job, data)
        if replayed:
            response["Idempotent-Replayed"] = "true"
        return response

    def render(self, job: Transcription, data: dict) -> Response:
        """The OpenAI-shaped answer for a final job."""
        if job.status != Transcription.Status.SUCCEEDED:
            code = job.error_code or job.status
            raise InvalidRequest(
                job.error_message or f"The transcription was {job.status}.", code=code, status_code=422
            )
        fmt = data["response_format"]
        if fmt in ("text", "srt", "vtt"):
            from portal.downloads import safe_download

            body = job.text if fmt == "text" else (to_srt(job) if fmt == "srt" else to_vtt(job))
            response = HttpResponse(body, content_type="text/plain; charset=utf-8")
            return safe_download(response, filename=f"{job.pk}.{'txt' if fmt == 'text' else fmt}", inline=True)
        body = {"text": job.text, "usage": _usage(job), "id": str(job.pk)}
        if fmt == "verbose_json":
            body.update(
                {
                    "task": "transcribe",
                    "language": job.language,
                    "duration": job.duration_s,
                    "segments": [
                        {"id": i, "seek": 0, "start": s["start"], "end": s["end"], "text": s["text"], "tokens": [],
                         "temperature": 0.0, "avg_logprob": 0.0, "compression_ratio": 1.0, "no_speech_prob": 0.0}
                        for i, s in enumerate(job.segments or [])
                    ],
                }
            )  # fmt: skip
        return Response(body)
