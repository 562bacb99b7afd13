from django.urls import path

from transcription.api.openai import OpenAITranscriptionApi

urlpatterns = [
    path("audio/transcriptions", OpenAITranscriptionApi.as_view(), name="openai-transcriptions"),
]
