"""The tenant's webhook signing secret: read it (to verify Tingxie-Signature) and rotate it."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from tenants.api.base import TenantApi
from tenants.services import webhook_secret_rotate


class WebhookSecretSerializer(serializers.Serializer):
    secret = serializers.CharField(
        help_text="HMAC-SHA256 key of the Tingxie-Signature header on webhooks (see x-webhooks in this schema)."
    )


class WebhookSecretGetApi(TenantApi):
    @extend_schema(responses=WebhookSecretSerializer, summary="The webhook signing secret")
    def get(self, request):
        return Response({"secret": self.tenant.webhook_secret})


class WebhookSecretRotateApi(TenantApi):
    @extend_schema(
        request=None,
        responses=WebhookSecretSerializer,
        summary="Rotate the webhook signing secret (webhooks sent from now on use the new one)",
    )
    def post(self, request):
        return Response({"secret": webhook_secret_rotate(tenant=self.tenant)})
