import functools
import logging
import os

from django.apps import AppConfig
from django.conf import settings
from django.core.signals import request_started

logger = logging.getLogger(__name__)


class TranscriptionConfig(AppConfig):
    name = "transcription"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from billing.statements import usage_source_register
        from billing.verify import drift_check_register
        from transcription import checks  # noqa: F401  (registers system checks)
        from transcription.selectors import transcription_statement_lines
        from transcription.verify import transcription_ledger_drift

        usage_source_register(transcription_statement_lines)
        drift_check_register("transcription rows", transcription_ledger_drift)
        # Not made here: importing the app writes nothing (production); the first request makes it.
        request_started.connect(_upload_temp_dir_ensure, dispatch_uid="transcription-upload-temp-dir")


def _upload_temp_dir_ensure(**kwargs) -> None:
    """Django spools big uploads into FILE_UPLOAD_TEMP_DIR (the orphan sweep's to clean) and fails if it is
    missing; settings only name it. Runs before the request's body is parsed."""
    if settings.FILE_UPLOAD_TEMP_DIR:
        _make_dir(str(settings.FILE_UPLOAD_TEMP_DIR))


@functools.cache
def _make_dir(path: str) -> None:
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:  # e.g. a read-only checkout: uploads over FILE_UPLOAD_MAX_MEMORY_SIZE will fail
        logger.warning("Cannot create FILE_UPLOAD_TEMP_DIR %s: %s", path, exc)
