"""API v1 for enrolled speakers (voiceprints): enroll, list, get, rename, delete. One view per operation."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from portal.longpoll import AwaitResponse, LongPollApiMixin
from portal.openapi import paginated
from portal.pagination import PAGINATION_PARAMETERS, Pagination
from tenants.api.base import TenantApi
from transcription import selectors
from transcription.api.views import reject_oversized_body
from transcription.models import Speaker
from transcription.services import speakers as speaker_services


class SpeakerSerializer(serializers.Serializer):
    """An enrolled speaker as the API returns it; the voiceprint itself never leaves the server."""

    id = serializers.UUIDField(source="pk")
    object = serializers.SerializerMethodField()
    name = serializers.CharField()
    external_id = serializers.CharField(allow_null=True, help_text="The id Xiaozhi registered it under, if any.")
    status = serializers.ChoiceField(
        choices=Speaker.Status.values, help_text="pending until the worker has computed the voiceprint."
    )
    samples = serializers.IntegerField()
    speech_s = serializers.FloatField(help_text="Seconds of speech the voiceprint was computed from.")
    model = serializers.CharField(source="embedding_model")
    error = serializers.CharField(source="error_message", allow_blank=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_object(self, obj) -> str:
        return "speaker"


class SpeakerCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    file = serializers.ListField(
        child=serializers.FileField(allow_empty_file=True),
        min_length=1,
        max_length=speaker_services.MAX_SAMPLES,
        help_text=f"1 to {speaker_services.MAX_SAMPLES} voice samples (repeat the field), each at most "
        f"{speaker_services.MAX_SAMPLE_SECONDS:.0f} s of audio of this speaker alone.",
    )


class SpeakerRenameSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)


def speaker_representation(speaker: Speaker) -> dict:
    return SpeakerSerializer(speaker).data


class SpeakerCreateListApi(LongPollApiMixin, TenantApi):
    @extend_schema(
        request={"multipart/form-data": SpeakerCreateSerializer},
        responses={201: SpeakerSerializer},
        summary="Enroll a speaker (answers once the voiceprint is computed, or pending after the wait)",
    )
    def post(self, request):
        reject_oversized_body(request._request)
        serializer = SpeakerCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        speaker = speaker_services.speaker_create(tenant=self.tenant, name=data["name"], uploaded_files=data["file"])
        return AwaitResponse(
            selectors.speaker_await_enrolled(
                tenant=self.tenant.pk, speaker_id=speaker.pk, timeout_s=settings.SPEAKER_WAIT_SECONDS
            ),
            then=lambda s: Response(speaker_representation(s), status=status.HTTP_201_CREATED),
        )

    @extend_schema(
        parameters=PAGINATION_PARAMETERS,
        responses={200: paginated(SpeakerSerializer)},
        operation_id="api_v1_speakers_list",
        summary="List enrolled speakers",
    )
    def get(self, request):
        paginator = Pagination()
        page = paginator.paginate_queryset(selectors.speaker_list(tenant=self.tenant), request, view=self)
        return paginator.get_paginated_response([speaker_representation(s) for s in page])


class SpeakerDetailApi(TenantApi):
    @extend_schema(responses={200: SpeakerSerializer}, summary="Get an enrolled speaker")
    def get(self, request, speaker_id):
        return Response(speaker_representation(selectors.speaker_get(tenant=self.tenant, speaker_id=speaker_id)))

    @extend_schema(request=SpeakerRenameSerializer, responses={200: SpeakerSerializer}, summary="Rename a speaker")
    def patch(self, request, speaker_id):
        speaker = selectors.speaker_get(tenant=self.tenant, speaker_id=speaker_id)
        serializer = SpeakerRenameSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        speaker = speaker_services.speaker_rename(speaker=speaker, name=serializer.validated_data["name"])
        return Response(speaker_representation(speaker))

    @extend_schema(responses={204: None}, summary="Delete a speaker and its voiceprint")
    def delete(self, request, speaker_id):
        speaker_services.speaker_delete(speaker=selectors.speaker_get(tenant=self.tenant, speaker_id=speaker_id))
        return Response(status=status.HTTP_204_NO_CONTENT)
