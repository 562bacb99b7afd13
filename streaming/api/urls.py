"""Included under /api/v1/."""

from django.urls import path

from streaming.api import views

urlpatterns = [
    path("streams", views.StreamListApi.as_view(), name="stream-list"),
    path("streams/<uuid:stream_id>", views.StreamGetApi.as_view(), name="stream-get"),
]
