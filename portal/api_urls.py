"""The v1 API, one view per operation."""

from django.urls import include, path

urlpatterns = [
    path("", include("transcription.api.urls")),
    path("", include("billing.api.urls")),
    path("", include("tenants.api.urls")),
    path("", include("streaming.api.urls")),
]
