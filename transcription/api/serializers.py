"""Input validation for the transcription endpoints (the output shape is transcription.representation)."""

from __future__ import annotations

from rest_framework import serializers

from transcription.constants import LANGUAGES
from transcription.models import Transcription


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
