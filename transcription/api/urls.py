from django.urls import path

from transcription.api import speakers, views

urlpatterns = [
    path("transcriptions", views.TranscriptionCreateListApi.as_view(), name="api-transcriptions"),
    path("transcriptions/<str:transcription_id>", views.TranscriptionDetailApi.as_view(), name="api-transcription"),
    path(
        "transcriptions/<str:transcription_id>/cancel",
        views.TranscriptionCancelApi.as_view(),
        name="api-transcription-cancel",
    ),
    path(
        "transcriptions/<str:transcription_id>/transcript",
        views.TranscriptionTranscriptApi.as_view(),
        name="api-transcript",
    ),
    path("transcriptions/<str:transcription_id>/receipt", views.TranscriptionReceiptApi.as_view(), name="api-receipt"),
    path("usage", views.UsageApi.as_view(), name="api-usage"),
    path("speakers", speakers.SpeakerCreateListApi.as_view(), name="api-speakers"),
    path("speakers/<str:speaker_id>", speakers.SpeakerDetailApi.as_view(), name="api-speaker"),
]
