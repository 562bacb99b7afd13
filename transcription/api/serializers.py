"""Input validation for the transcription endpoints (the output shape is transcription.representation)."""

from __future__ import annotations

from datetime import date, timedelta

from django.core.validators import MaxValueValidator, MinValueValidator
from django.utils import timezone
from rest_framework import serializers

from portal.serializer_fields import CopiedFieldsMixin
from transcription.constants import LANGUAGES
from transcription.diarize import MAX_SPEAKERS
from transcription.models import Transcription


class TranscriptionCreateSerializer(CopiedFieldsMixin, serializers.Serializer):
    """One per submit: its fields are copied, not rebuilt (portal.serializer_fields)."""

    file = serializers.FileField(
        allow_empty_file=True, help_text="Audio: wav, mp3, m4a, flac, ogg, opus, webm or mp4 audio."
    )
    language = serializers.ChoiceField(choices=LANGUAGES, default="auto")
    itn = serializers.BooleanField(default=True, help_text="Inverse text normalization (numbers as digits).")
    vad = serializers.BooleanField(default=True, help_text="Cut silence before recognition.")
    hotwords = serializers.CharField(required=False, allow_blank=True, default="", help_text="One per line.")
    hotword_list = serializers.IntegerField(required=False, help_text="Id of a saved hotword list.")
    word_timestamps = serializers.BooleanField(
        default=False,
        help_text="Give each segment its words with start and end times, where the model produces them "
        "(SenseVoice, Paraformer); otherwise a warning says it did not.",
    )
    diarize = serializers.BooleanField(
        default=False, help_text="Label segments with speakers S1, S2... in order of first appearance."
    )
    speakers = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_SPEAKERS, help_text="Exact number of speakers (implies diarize)."
    )
    min_speakers = serializers.IntegerField(required=False, min_value=1, max_value=MAX_SPEAKERS)
    max_speakers = serializers.IntegerField(required=False, min_value=1, max_value=MAX_SPEAKERS)
    speaker_ids = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="Enrolled speakers (ids, repeated or comma-separated): segments get the matching speaker's name "
        "and a score, or 'unknown'.",
    )
    webhook_url = serializers.URLField(
        required=False,
        allow_blank=True,
        default="",
        max_length=Transcription._meta.get_field("webhook_url").max_length,
    )

    def validate_webhook_url(self, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise serializers.ValidationError("Must be an http(s) URL.")
        return value

    def validate_speaker_ids(self, value: list[str]) -> list[str]:
        return [part.strip() for item in value for part in item.split(",") if part.strip()]


def speaker_options(data: dict) -> dict:
    """The speaker options of a validated create request, for options_normalize."""
    keys = ("diarize", "speakers", "min_speakers", "max_speakers", "speaker_ids")
    return {key: data[key] for key in keys if data.get(key) not in (None, [], "")}


class TranscriptionListQuerySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=Transcription.Status.values, required=False)
    created_after = serializers.DateTimeField(required=False)
    created_before = serializers.DateTimeField(required=False)


USAGE_MAX_DAYS = 366
USAGE_DEFAULT_DAYS = 30
# Dates the usage report (and Python's date arithmetic around it) can represent, with room to spare.
USAGE_MIN_DATE, USAGE_MAX_DATE = date(2000, 1, 1), date(2999, 12, 31)


class UsageQuerySerializer(serializers.Serializer):
    """`from`/`to` of GET /usage; an empty value (`?to=`) counts as absent, like an empty form field."""

    def get_fields(self):
        help_text = {
            "from": f"First day (YYYY-MM-DD); default {USAGE_DEFAULT_DAYS - 1} days before `to`. Empty = absent.",
            "to": "Last day, included (YYYY-MM-DD); default today. Empty = absent.",
        }
        return {
            name: serializers.DateField(
                required=False,
                allow_null=True,
                validators=[MinValueValidator(USAGE_MIN_DATE), MaxValueValidator(USAGE_MAX_DATE)],
                help_text=f"{text} At most {USAGE_MAX_DAYS} days from `from` to `to`.",
            )
            for name, text in help_text.items()
        }

    def validate(self, attrs):
        end = attrs.get("to") or timezone.localdate()
        start = attrs.get("from") or max(end - timedelta(days=USAGE_DEFAULT_DAYS - 1), USAGE_MIN_DATE)
        if start > end:
            raise serializers.ValidationError({"from": "Must not be after 'to'."})
        if (end - start).days >= USAGE_MAX_DAYS:
            raise serializers.ValidationError({"from": f"The range may span at most {USAGE_MAX_DAYS} days."})
        return {"start": start, "end": end}
