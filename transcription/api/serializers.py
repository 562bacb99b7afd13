"""Input validation and the public JSON shape of a job."""

from __future__ import annotations

from rest_framework import serializers

from transcription.models import Transcription
from transcription.services import LANGUAGES


class TranscriptionCreateSerializer(serializers.Serializer):
    file = serializers.FileField(
        allow_empty_file=True, help_text="Audio: wav, mp3, m4a, flac, ogg, opus, webm or mp4 audio."
    )
    language = serializers.ChoiceField(choices=LANGUAGES, default="auto")
    itn = serializers.BooleanField(default=True, help_text="Inverse text normalization (numbers as digits).")
    vad = serializers.BooleanField(default=True, help_text="Cut silence before recognition.")
    hotwords = serializers.CharField(required=False, allow_blank=True, default="", help_text="One per line.")
    hotword_list = serializers.IntegerField(required=False, help_text="Id of a saved hotword list.")
    webhook_url = serializers.URLField(required=False, allow_blank=True, default="")

    def validate_webhook_url(self, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise serializers.ValidationError("Must be an http(s) URL.")
        return value


class TranscriptionListQuerySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=Transcription.Status.values, required=False)
    created_after = serializers.DateTimeField(required=False)
    created_before = serializers.DateTimeField(required=False)


def _iso(dt):
    return dt.isoformat().replace("+00:00", "Z") if dt else None


def job_representation(job: Transcription) -> dict:
    """The documented job object (API v1)."""
    error = {"code": job.error_code, "message": job.error_message} if job.error_code else None
    return {
        "id": str(job.pk),
        "object": "transcription",
        "status": job.status,
        "progress": round(job.progress, 3),
        "filename": job.filename,
        "duration_s": job.duration_s if job.duration_s is not None else None,
        "language": job.language or job.options.get("language", "auto"),
        "options": job.options,
        "text": job.text if job.status == Transcription.Status.SUCCEEDED else None,
        "segments": job.segments if job.status == Transcription.Status.SUCCEEDED else [],
        "usage": {
            "tokens": job.tokens,
            "billed_tokens": job.billed_tokens if job.billed_tokens is not None else 0,
            "held_tokens": job.held_tokens,
            "rule": job.token_rule or "v1",
        },
        "cache_hit": job.cache_hit,
        "truncated": job.truncated,
        "error": error,
        "attempts": job.attempt,
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
        "timings_ms": {"decode": job.decode_ms, "vad": job.vad_ms, "asr": job.asr_ms},
        "webhook_url": job.webhook_url or None,
    }


class SegmentSerializer(serializers.Serializer):
    start = serializers.FloatField(help_text="Seconds from the start of the original audio.")
    end = serializers.FloatField()
    text = serializers.CharField()


class UsageSerializer(serializers.Serializer):
    tokens = serializers.IntegerField(allow_null=True, help_text="Rule v1 count of the delivered text.")
    billed_tokens = serializers.IntegerField(help_text="min(tokens, held_tokens).")
    held_tokens = serializers.IntegerField(help_text="ceil(duration_s x MAX_TOKENS_PER_SECOND) held at submission.")
    rule = serializers.CharField()


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()


class JobSerializer(serializers.Serializer):
    """The documented job object; rendering is job_representation()."""

    id = serializers.UUIDField()
    object = serializers.CharField()
    status = serializers.ChoiceField(choices=Transcription.Status.values)
    progress = serializers.FloatField(min_value=0, max_value=1)
    filename = serializers.CharField()
    duration_s = serializers.FloatField(allow_null=True)
    language = serializers.CharField()
    options = serializers.DictField()
    text = serializers.CharField(allow_null=True)
    segments = SegmentSerializer(many=True)
    usage = UsageSerializer()
    cache_hit = serializers.BooleanField()
    truncated = serializers.BooleanField()
    error = ErrorSerializer(allow_null=True)
    attempts = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    webhook_url = serializers.URLField(allow_null=True)

    def to_representation(self, instance):
        return job_representation(instance)
