"""Output shapes of the streams API."""

from rest_framework import serializers

from streaming.models import StreamSession


class StreamFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=StreamSession.Status.choices, required=False)


class StreamUsageSerializer(serializers.Serializer):
    tokens = serializers.IntegerField(help_text="Rule v1 count of the finals delivered.")
    billed_tokens = serializers.IntegerField(help_text="min(tokens, held): debited once when the stream ended.")
    held_tokens = serializers.IntegerField(help_text="Held now (whole minutes of audio ahead); 0 once ended.")
    rule = serializers.CharField()


class StreamOutputSerializer(serializers.ModelSerializer):
    api_key_prefix = serializers.SerializerMethodField()
    usage = serializers.SerializerMethodField()

    class Meta:
        model = StreamSession
        fields = [
            "id", "protocol", "mode", "wav_name", "model", "status", "audio_seconds", "finals", "usage",
            "close_reason", "close_message", "api_key_prefix", "started_at", "ended_at",
        ]  # fmt: skip

    def get_api_key_prefix(self, obj) -> str | None:
        return obj.api_key.prefix if obj.api_key_id and obj.api_key else None

    @staticmethod
    def get_usage(obj) -> StreamUsageSerializer:
        return StreamUsageSerializer(
            {"tokens": obj.tokens, "billed_tokens": obj.billed_tokens, "held_tokens": obj.held_tokens, "rule": obj.rule}
        ).data
