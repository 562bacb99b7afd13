from django.urls import path

from transcription.api.openai import OpenAITranscriptionApi
from transcription.api.openai_models import OpenAIModelListApi, OpenAIModelRetrieveApi, OpenAITranslationApi

urlpatterns = [
    path("audio/transcriptions", OpenAITranscriptionApi.as_view(), name="openai-transcriptions"),
    path("audio/translations", OpenAITranslationApi.as_view(), name="openai-translations"),
    path("models", OpenAIModelListApi.as_view(), name="openai-models"),
    path("models/<path:model_id>", OpenAIModelRetrieveApi.as_view(), name="openai-model"),
]
