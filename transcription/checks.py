"""System checks for the settings the ASR pipeline depends on."""

from django.conf import settings
from django.core.checks import Error, Warning, register


@register()
def check_asr_settings(app_configs, **kwargs):
    errors = []
    q = settings.Q_CLUSTER
    asr = q.get("ALT_CLUSTERS", {}).get("asr")
    if not asr:
        errors.append(Error("Q_CLUSTER['ALT_CLUSTERS']['asr'] is missing.", id="transcription.E001"))
    elif asr.get("retry", 0) <= asr.get("timeout", 0):
        errors.append(
            Error(
                "The asr cluster's retry must be larger than its timeout.",
                id="transcription.E002",
                hint="Otherwise django-q2 re-delivers tasks that are still running.",
            )
        )
    if settings.JOB_LEASE_SECONDS < 10:
        errors.append(
            Warning("JOB_LEASE_SECONDS below 10 s makes the sweeper re-queue live jobs.", id="transcription.W001")
        )
    if settings.MAX_TOKENS_PER_SECOND <= 0:
        errors.append(Error("MAX_TOKENS_PER_SECOND must be positive.", id="transcription.E003"))
    return errors
