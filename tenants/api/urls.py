from django.urls import path

from tenants.api.views import WebhookSecretGetApi, WebhookSecretRotateApi

urlpatterns = [
    path("webhook-secret", WebhookSecretGetApi.as_view(), name="webhook-secret"),
    path("webhook-secret/rotate", WebhookSecretRotateApi.as_view(), name="webhook-secret-rotate"),
]
