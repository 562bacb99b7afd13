"""Xiaozhi's voiceprint service paths (mounted at /voiceprint/)."""

from django.urls import path

from transcription.api import voiceprint

urlpatterns = [
    path("register", voiceprint.VoiceprintRegisterApi.as_view(), name="voiceprint-register"),
    path("identify", voiceprint.VoiceprintIdentifyApi.as_view(), name="voiceprint-identify"),
    path("health", voiceprint.VoiceprintHealthApi.as_view(), name="voiceprint-health"),
    path("<str:speaker_id>", voiceprint.VoiceprintDeleteApi.as_view(), name="voiceprint-delete"),
]
