"""Streams API: the tenant's live recognition sessions (the sessions themselves run on the stream worker)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from portal.errors import NotFound
from portal.openapi import paginated
from portal.pagination import PAGINATION_PARAMETERS, Pagination
from streaming import selectors
from streaming.api.serializers import StreamFilterSerializer, StreamOutputSerializer
from streaming.models import StreamSession
from tenants.api.base import TenantApi

STREAMS_DESCRIPTION = (
    "Live sessions on the stream worker (FunASR runtime WebSocket protocol on STREAM_PORT, default 10095). "
    "Each session holds ceil(60 s x MAX_TOKENS_PER_SECOND) per minute of audio ahead, counts each final with "
    "token rule v1 and settles once at its end: billed_tokens = min(tokens, held)."
)


class StreamListApi(TenantApi):
    @extend_schema(
        parameters=[StreamFilterSerializer, *PAGINATION_PARAMETERS],
        responses={200: paginated(StreamOutputSerializer)},
        summary="Live recognition sessions, newest first",
        operation_id="api_v1_streams_list",
        description=STREAMS_DESCRIPTION,
        tags=["streams"],
    )
    def get(self, request):
        filters = StreamFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        qs = selectors.stream_list(tenant=self.tenant, status=filters.validated_data.get("status"))
        paginator = Pagination()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(StreamOutputSerializer(page, many=True).data)


class StreamGetApi(TenantApi):
    @extend_schema(
        responses={200: StreamOutputSerializer},
        summary="One live recognition session",
        operation_id="api_v1_streams_retrieve",
        tags=["streams"],
    )
    def get(self, request, stream_id):
        try:
            stream = selectors.stream_get(tenant=self.tenant, stream_id=stream_id)
        except StreamSession.DoesNotExist:
            raise NotFound("No such stream.") from None
        return Response(StreamOutputSerializer(stream).data)
