"""The one public shape of a transcription: API v1 responses, webhook payloads and the OpenAPI schema all use it."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from transcription.models import Transcription

Status = Transcription.Status


class WordSerializer(serializers.Serializer):
    word = serializers.CharField()
    start = serializers.FloatField(help_text="Seconds from the start of the original audio.")
    end = serializers.FloatField()


class SegmentSerializer(serializers.Serializer):
    start = serializers.FloatField(help_text="Seconds from the start of the original audio.")
    end = serializers.FloatField()
    text = serializers.CharField()
    speaker = serializers.CharField(
        required=False,
        help_text="With diarize: S1, S2... in order of first appearance (renamable per transcription). With "
        "speaker_ids: the enrolled speaker's name when the voiceprint matched, else 'unknown' (or the S label).",
    )
    speaker_score = serializers.FloatField(
        required=False, allow_null=True, help_text="With speaker_ids: cosine similarity to the best voiceprint."
    )
    words = WordSerializer(
        many=True, required=False, help_text="With word_timestamps, where the model gives them (punctuation left out)."
    )
    tokens = serializers.ListField(
        child=serializers.IntegerField(),
        required=False,
        help_text="Jobs from the OpenAI endpoint's verbose_json, SenseVoice models: the model's token ids.",
    )
    avg_logprob = serializers.FloatField(required=False, help_text="Their mean log-probability (same jobs).")
    no_speech_prob = serializers.FloatField(
        required=False, help_text="The model's probability that the segment holds no speech (same jobs)."
    )


class UsageSerializer(serializers.Serializer):
    tokens = serializers.IntegerField(allow_null=True, help_text="Rule v1 count of the delivered text.")
    billed_tokens = serializers.IntegerField(help_text="min(tokens, held_tokens).")
    held_tokens = serializers.IntegerField(
        help_text="ceil(duration_s x MAX_TOKENS_PER_SECOND) held at submission, more if the decoded audio "
        "turned out longer than the file's header said."
    )
    rule = serializers.CharField()


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()


class TimingsSerializer(serializers.Serializer):
    decode = serializers.IntegerField(allow_null=True)
    vad = serializers.IntegerField(allow_null=True)
    asr = serializers.IntegerField(allow_null=True)


class WebhookDeliverySerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=["pending", "retrying", "delivered", "failed", "blocked"],
        help_text="pending: not attempted yet; retrying: an attempt failed, another is scheduled; failed: "
        "no attempt left; blocked: the URL was refused (e.g. it resolves to a private address).",
    )
    attempts = serializers.IntegerField()
    error = serializers.CharField(allow_null=True, help_text="Why the last attempt failed or was refused.")


class TranscriptionSerializer(serializers.Serializer):
    """A transcription as the API returns it (read-only)."""

    id = serializers.UUIDField(source="pk")
    object = serializers.SerializerMethodField()
    status = serializers.ChoiceField(choices=Status.values)
    progress = serializers.SerializerMethodField()
    filename = serializers.CharField()
    duration_s = serializers.FloatField(allow_null=True)
    language = serializers.SerializerMethodField()
    options = serializers.DictField()
    text = serializers.SerializerMethodField()
    segments = serializers.SerializerMethodField()
    usage = serializers.SerializerMethodField()
    cache_hit = serializers.BooleanField()
    truncated = serializers.BooleanField()
    warnings = serializers.ListField(child=serializers.CharField(), help_text="Things the caller should know, e.g. "
                                     "hotwords the model could not use.")  # fmt: skip
    error = serializers.SerializerMethodField()
    attempts = serializers.IntegerField(source="attempt")
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    timings_ms = serializers.SerializerMethodField()
    webhook_url = serializers.SerializerMethodField()
    webhook = serializers.SerializerMethodField()
    audio_expired_at = serializers.DateTimeField(
        allow_null=True, help_text="When the tenant's retention setting deleted the audio (null: not deleted)."
    )
    transcript_expired_at = serializers.DateTimeField(
        allow_null=True,
        help_text="When the tenant's retention setting deleted the text and segments; usage stays.",
    )

    @extend_schema_field(serializers.ChoiceField(choices=["transcription"]))
    def get_object(self, obj) -> str:
        return "transcription"

    @extend_schema_field(serializers.FloatField(min_value=0, max_value=1))
    def get_progress(self, obj) -> float:
        return round(obj.progress, 3)

    @extend_schema_field(serializers.CharField())
    def get_language(self, obj) -> str:
        return obj.language or obj.options.get("language", "auto")

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_text(self, obj):
        return obj.text if obj.status == Status.SUCCEEDED and not obj.transcript_expired_at else None

    @extend_schema_field(SegmentSerializer(many=True))
    def get_segments(self, obj):
        return obj.segments if obj.status == Status.SUCCEEDED else []

    @extend_schema_field(UsageSerializer)
    def get_usage(self, obj):
        return {
            "tokens": obj.tokens,
            "billed_tokens": obj.billed_tokens if obj.billed_tokens is not None else 0,
            "held_tokens": obj.held_tokens,
            "rule": obj.token_rule or "v1",
        }

    @extend_schema_field(ErrorSerializer(allow_null=True))
    def get_error(self, obj):
        return {"code": obj.error_code, "message": obj.error_message} if obj.error_code else None

    @extend_schema_field(TimingsSerializer)
    def get_timings_ms(self, obj):
        return {"decode": obj.decode_ms, "vad": obj.vad_ms, "asr": obj.asr_ms}

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_webhook_url(self, obj):
        return obj.webhook_url or None

    @extend_schema_field(WebhookDeliverySerializer(allow_null=True))
    def get_webhook(self, obj):
        """The delivery of the webhook (null without a webhook_url)."""
        if not obj.webhook_url:
            return None
        return {
            "status": obj.webhook_status or "pending",
            "attempts": obj.webhook_attempts,
            "error": obj.webhook_error or None,
        }


_shared: list[TranscriptionSerializer] = []


def transcription_representation(transcription: Transcription) -> dict:
    """The documented transcription object (API v1, webhooks).

    One serializer per process, its fields built and bound once: a serializer deep-copies its declared fields
    for every new instance, which cost every response more than the rest of the rendering. Its fields keep no
    state between calls (the time zone is read per call), so threads share it.
    """
    if not _shared:
        _shared.append(TranscriptionSerializer())
    return _shared[0].to_representation(transcription)
