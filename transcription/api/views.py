"""API v1 for transcriptions: one view per operation; views parse, call a service, serialize."""

from __future__ import annotations

import time

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response

from portal.errors import FileTooLarge, InvalidRequest
from portal.longpoll import AwaitResponse, LongPollApiMixin
from portal.openapi import paginated
from portal.pagination import PAGINATION_PARAMETERS, Pagination
from tenants.api.base import TenantApi
from transcription import selectors, services
from transcription.api.serializers import (
    USAGE_DEFAULT_DAYS,
    USAGE_MAX_DAYS,
    TranscriptionCreateSerializer,
    TranscriptionListQuerySerializer,
    UsageQuerySerializer,
    speaker_options,
)
from transcription.formats import FORMATS, render_transcript
from transcription.models import Transcription
from transcription.receipts import receipt_build
from transcription.representation import TranscriptionSerializer, transcription_representation


def reject_oversized_body(request) -> None:
    """Refuse a too-large upload from its Content-Length before reading the body."""
    from django.conf import settings

    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > settings.MAX_UPLOAD_BYTES + 64 * 1024:
        raise FileTooLarge(
            f"The request is {length / 1e6:.1f} MB; the upload limit is {settings.MAX_UPLOAD_BYTES / 1e6:.0f} MB."
        )


class TranscriptionCreateListApi(TenantApi):
    @extend_schema(
        request={"multipart/form-data": TranscriptionCreateSerializer},
        responses={202: TranscriptionSerializer},
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=False)],
        summary="Submit audio for transcription",
    )
    def post(self, request):
        reject_oversized_body(request._request)
        serializer = TranscriptionCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        job = services.transcription_create(
            tenant=self.tenant,
            uploaded_file=data["file"],
            options={
                "language": data["language"],
                "itn": data["itn"],
                "vad": data["vad"],
                "hotwords": data.get("hotwords", ""),
                "hotword_list": data.get("hotword_list"),
                "word_timestamps": data["word_timestamps"],
                **speaker_options(data),
            },
            source=Transcription.Source.API,
            api_key=self.api_key,
            idempotency_key=request.headers.get("Idempotency-Key"),
            webhook_url=data.get("webhook_url", ""),
        )
        response = Response(transcription_representation(job), status=status.HTTP_202_ACCEPTED)
        if getattr(job, "idempotent_replay", False):
            response["Idempotent-Replayed"] = "true"
        return response

    @extend_schema(
        parameters=[TranscriptionListQuerySerializer, *PAGINATION_PARAMETERS],
        responses={200: paginated(TranscriptionSerializer)},
        # Named explicitly: with a page serializer drf-spectacular would call it "retrieve", like the detail GET.
        operation_id="api_v1_transcriptions_list",
        summary="List transcriptions",
    )
    def get(self, request):
        query = TranscriptionListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        qs = selectors.transcription_list(tenant=self.tenant, **query.validated_data)
        paginator = Pagination()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response([transcription_representation(j) for j in page])


MAX_WAIT_SECONDS = 60


class TranscriptionDetailApi(LongPollApiMixin, TenantApi):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "wait", float, required=False,
                description=f"Long-poll: answer as soon as the job is final, or after this many seconds (max {MAX_WAIT_SECONDS}).",
            )
        ],
        responses={200: TranscriptionSerializer},
        summary="Get a transcription",
    )  # fmt: skip
    def get(self, request, transcription_id):
        wait = request.query_params.get("wait")
        if wait is not None:
            try:
                seconds = float(wait)
            except ValueError:
                seconds = -1.0
            if not 0 <= seconds <= MAX_WAIT_SECONDS:
                raise InvalidRequest(f"wait must be a number of seconds between 0 and {MAX_WAIT_SECONDS}.")
        if wait is None or seconds == 0:
            return Response(
                transcription_representation(
                    selectors.transcription_get(tenant=self.tenant, transcription_id=transcription_id)
                )
            )
        # A long-poll usually finds its job still queued or running: its status first, the whole row when final.
        read_at = time.monotonic()
        job = selectors.transcription_status_of(tenant=self.tenant, transcription_id=transcription_id)
        if job.is_final:
            return Response(
                transcription_representation(selectors.transcription_get(tenant=self.tenant, transcription_id=job.pk))
            )
        # Awaited in the event loop (LongPollApiMixin): a waiting client holds no thread.
        return AwaitResponse(
            selectors.transcription_await_final(tenant=self.tenant, job=job, timeout_s=seconds, since=read_at),
            then=lambda job: Response(transcription_representation(job)),
        )

    @extend_schema(responses={204: None}, summary="Delete a transcription's audio and text (the ledger stays)")
    def delete(self, request, transcription_id):
        services.transcription_delete(
            transcription=selectors.transcription_get(tenant=self.tenant, transcription_id=transcription_id)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class TranscriptionCancelApi(TenantApi):
    @extend_schema(
        request=None, responses={200: TranscriptionSerializer}, summary="Cancel a queued or running job (not charged)"
    )
    def post(self, request, transcription_id):
        job = services.transcription_cancel(
            transcription=selectors.transcription_get(tenant=self.tenant, transcription_id=transcription_id)
        )
        return Response(transcription_representation(job))


class TranscriptionTranscriptApi(TenantApi):
    @extend_schema(
        parameters=[OpenApiParameter("format", str, enum=list(FORMATS), required=False)],
        responses={
            (200, "text/plain"): OpenApiTypes.STR,
            (200, "application/x-subrip"): OpenApiTypes.STR,
            (200, "text/vtt"): OpenApiTypes.STR,
            (200, "application/json"): OpenApiTypes.OBJECT,
        },
        summary="Download the transcript as txt, srt, vtt or json",
    )
    def get(self, request, transcription_id):
        job = selectors.transcription_get(tenant=self.tenant, transcription_id=transcription_id)
        fmt = request.query_params.get("format", "txt")
        if job.status != Transcription.Status.SUCCEEDED:
            raise InvalidRequest(
                f"The transcript is not ready: the job is {job.status}. Poll GET /api/v1/transcriptions/{job.pk}.",
                code="transcript_not_ready",
                status_code=409,
            )
        body, content_type = render_transcript(transcription=job, fmt=fmt)
        from portal.downloads import safe_download

        return safe_download(HttpResponse(body, content_type=content_type), filename=f"{job.pk}.{fmt}")


class TranscriptionReceiptApi(TenantApi):
    @extend_schema(responses={200: dict}, summary="The billed units of a job (token rule v1)")
    def get(self, request, transcription_id):
        job = selectors.transcription_get(tenant=self.tenant, transcription_id=transcription_id)
        return Response(receipt_build(transcription=job))


class UsageApi(TenantApi):
    @extend_schema(
        parameters=[UsageQuerySerializer],
        responses={200: dict},
        summary="Usage per day: jobs, audio seconds, billed tokens",
        description=f"Days from `from` to `to` (both included), at most {USAGE_MAX_DAYS}; default the last "
        f"{USAGE_DEFAULT_DAYS} days. An empty parameter counts as absent; an invalid or out-of-range date is a 400 "
        "naming the parameter.",
    )
    def get(self, request):
        query = UsageQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        start, end = query.validated_data["start"], query.validated_data["end"]
        days = selectors.usage_by_day(tenant=self.tenant, start=start, end=end)
        return Response(
            {
                "from": start,
                "to": end,
                "days": days,
                "totals": {
                    "jobs": sum(d["jobs"] for d in days),
                    "audio_seconds": round(sum(d["audio_seconds"] for d in days), 3),
                    "tokens": sum(d["tokens"] for d in days),
                },
            }
        )
