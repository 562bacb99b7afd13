from django.urls import path
from django.views.generic import RedirectView

from dashboard.views import (
    account,
    billing,
    developers,
    hotwords,
    keys,
    live,
    members,
    overview,
    settings,
    speakers,
    transcriptions,
)

app_name = "dashboard"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="dashboard:overview", permanent=False), name="home"),
    path("app/", overview.overview, name="overview"),
    path("app/transcriptions/", transcriptions.transcription_list_view, name="transcriptions"),
    path("app/transcriptions/new/", transcriptions.transcription_new, name="transcription_new"),
    path(
        "app/transcriptions/<str:transcription_id>/", transcriptions.transcription_detail, name="transcription_detail"
    ),
    path(
        "app/transcriptions/<str:transcription_id>/status/",
        transcriptions.transcription_status,
        name="transcription_status",
    ),
    path("app/transcriptions/<str:transcription_id>/row/", transcriptions.transcription_row, name="transcription_row"),
    path(
        "app/transcriptions/<str:transcription_id>/audio/",
        transcriptions.transcription_audio,
        name="transcription_audio",
    ),
    path(
        "app/transcriptions/<str:transcription_id>/download/<str:fmt>/",
        transcriptions.transcription_download,
        name="transcription_download",
    ),
    path(
        "app/transcriptions/<str:transcription_id>/cancel/",
        transcriptions.transcription_cancel,
        name="transcription_cancel",
    ),
    path(
        "app/transcriptions/<str:transcription_id>/delete/",
        transcriptions.transcription_delete,
        name="transcription_delete",
    ),
    path(
        "app/transcriptions/<str:transcription_id>/speakers/",
        transcriptions.transcription_speakers_rename,
        name="transcription_speakers",
    ),
    path("app/speakers/", speakers.speaker_list_view, name="speakers"),
    path("app/speakers/<str:speaker_id>/rename/", speakers.speaker_rename_view, name="speaker_rename"),
    path("app/speakers/<str:speaker_id>/delete/", speakers.speaker_delete_view, name="speaker_delete"),
    path("app/live/", live.live, name="live"),
    path("app/keys/", keys.key_list, name="keys"),
    path("app/keys/<str:key_id>/revoke/", keys.key_revoke, name="key_revoke"),
    path("app/developers/", developers.developers, name="developers"),
    path(
        "app/developers/webhook-secret/rotate/",
        developers.webhook_secret_rotate_view,
        name="webhook_secret_rotate",
    ),
    path("app/hotwords/", hotwords.hotword_lists, name="hotwords"),
    path("app/hotwords/<str:list_id>/", hotwords.hotword_list_edit, name="hotword_edit"),
    path("app/hotwords/<str:list_id>/delete/", hotwords.hotword_list_remove, name="hotword_delete"),
    path("app/billing/", billing.billing, name="billing"),
    path("app/billing/checkout/", billing.billing_checkout, name="billing_checkout"),
    path("app/billing/statements/<str:period>/", billing.billing_statement, name="billing_statement"),
    path("app/members/", members.member_list, name="members"),
    path("app/members/<str:membership_id>/role/", members.member_role, name="member_role"),
    path("app/members/<str:membership_id>/remove/", members.member_remove, name="member_remove"),
    path("app/invitations/<str:invitation_id>/revoke/", members.invitation_cancel, name="invitation_revoke"),
    path("app/settings/", settings.workspace_settings, name="settings"),
    path("app/welcome/", account.welcome, name="welcome"),
    path("app/switch/", account.switch_tenant, name="switch_tenant"),
    path("app/timezone/", account.set_timezone, name="set_timezone"),
    path("invite/<str:token>/", account.invitation_accept_view, name="invitation_accept"),
]
