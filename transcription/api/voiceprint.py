"""Xiaozhi-compatible voiceprint service: /voiceprint/register, /identify, /<speaker_id> (DELETE), /health.

Xiaozhi's voiceprint provider and manager call these exactly as they call xinnan-tech/voiceprint-api
(multipart `speaker_id` or comma-separated `speaker_ids` + `file`, `Authorization: Bearer <key>`, the
health check with `?key=`). Here the key is a Tingxie API key and every speaker is its tenant's.
"""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from portal.errors import DomainError, InvalidRequest
from portal.longpoll import AwaitResponse, LongPollApiMixin
from tenants.api.base import TenantApi
from tenants.authentication import ApiKeyAuthentication
from transcription import selectors
from transcription.api.views import reject_oversized_body
from transcription.models import Speaker, SpeakerIdentification
from transcription.services import speakers as speaker_services


class VoiceprintRegisterSerializer(serializers.Serializer):
    speaker_id = serializers.CharField(max_length=255, help_text="Your id for this speaker (re-registering replaces).")
    file = serializers.FileField(allow_empty_file=True, help_text="A WAV (or any supported audio) of the speaker.")


class VoiceprintIdentifySerializer(serializers.Serializer):
    speaker_ids = serializers.CharField(help_text="Candidate speaker ids, comma-separated.")
    file = serializers.FileField(allow_empty_file=True)


class VoiceprintResultSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    msg = serializers.CharField()


class VoiceprintIdentifyResultSerializer(serializers.Serializer):
    speaker_id = serializers.CharField(help_text="The best candidate, or empty when none clears the threshold.")
    score = serializers.FloatField()


class VoiceprintHealthSerializer(serializers.Serializer):
    total_voiceprints = serializers.IntegerField()
    status = serializers.CharField()


def _caller_id(speaker: Speaker | None) -> str:
    if speaker is None:
        return ""
    return speaker.external_id or str(speaker.pk)


class VoiceprintRegisterApi(LongPollApiMixin, TenantApi):
    @extend_schema(
        request={"multipart/form-data": VoiceprintRegisterSerializer},
        responses={200: VoiceprintResultSerializer},
        summary="Xiaozhi: register (or replace) a speaker's voiceprint",
    )
    def post(self, request):
        reject_oversized_body(request._request)
        serializer = VoiceprintRegisterSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        speaker_id = serializer.validated_data["speaker_id"].strip()
        speaker = speaker_services.speaker_create(
            tenant=self.tenant,
            name=speaker_id[:100],
            uploaded_files=[serializer.validated_data["file"]],
            external_id=speaker_id,
        )
        return AwaitResponse(
            selectors.speaker_await_enrolled(
                tenant=self.tenant.pk, speaker_id=speaker.pk, timeout_s=settings.SPEAKER_WAIT_SECONDS
            ),
            then=self.answer,
        )

    def answer(self, speaker: Speaker) -> Response:
        if speaker.status == Speaker.Status.FAILED:
            raise InvalidRequest(speaker.error_message, code="enrollment_failed", status_code=422)
        if speaker.status != Speaker.Status.READY:
            raise DomainError("The voiceprint is still being computed.", code="timeout", status_code=504)
        return Response({"success": True, "msg": f"registered: {speaker.external_id}"})


class VoiceprintIdentifyApi(LongPollApiMixin, TenantApi):
    @extend_schema(
        request={"multipart/form-data": VoiceprintIdentifySerializer},
        responses={200: VoiceprintIdentifyResultSerializer},
        summary="Xiaozhi: which of these speakers is speaking",
    )
    def post(self, request):
        reject_oversized_body(request._request)
        serializer = VoiceprintIdentifySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        ids = [part.strip() for part in serializer.validated_data["speaker_ids"].split(",") if part.strip()]
        query = speaker_services.identification_create(
            tenant=self.tenant, uploaded_file=serializer.validated_data["file"], speaker_ids=ids
        )
        return AwaitResponse(
            selectors.identification_await(identification=query, timeout_s=settings.SPEAKER_WAIT_SECONDS),
            then=self.answer,
        )

    def answer(self, query: SpeakerIdentification) -> Response:
        if query.status == SpeakerIdentification.Status.FAILED:
            raise InvalidRequest(query.error_message, code="unsupported_audio", status_code=422)
        if query.status != SpeakerIdentification.Status.DONE:
            raise DomainError("The identification is still running.", code="timeout", status_code=504)
        return Response({"speaker_id": _caller_id(query.speaker), "score": query.score or 0.0})


class VoiceprintDeleteApi(TenantApi):
    @extend_schema(responses={200: VoiceprintResultSerializer}, summary="Xiaozhi: delete a speaker's voiceprint")
    def delete(self, request, speaker_id):
        speaker = selectors.speaker_get_external(tenant=self.tenant, external_id=speaker_id)
        speaker_services.speaker_delete(speaker=speaker)
        return Response({"success": True, "msg": f"deleted: {speaker_id}"})


class QueryKeyAuthentication(ApiKeyAuthentication):
    """Xiaozhi's health check sends the key as `?key=` (the other calls use the Authorization header)."""

    def authenticate(self, request):
        raw = request.query_params.get("key", "").strip()
        if not raw:
            return super().authenticate(request)
        return (None, self.key_resolve(raw))


class QueryKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = QueryKeyAuthentication
    name = "ApiKeyQuery"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "query",
            "name": "key",
            "description": "A tenant API key as `?key=` (Xiaozhi's health check); `Authorization: Bearer` works too.",
        }


class VoiceprintHealthApi(TenantApi):
    authentication_classes = [QueryKeyAuthentication]

    @extend_schema(
        parameters=[OpenApiParameter("key", str, required=False, description="The API key (Xiaozhi's health check).")],
        responses={200: VoiceprintHealthSerializer},
        summary="Xiaozhi: health check and the number of this tenant's voiceprints",
    )
    def get(self, request):
        count = selectors.speaker_list(tenant=self.tenant).filter(status=Speaker.Status.READY).count()
        return Response({"total_voiceprints": count, "status": "healthy"})
