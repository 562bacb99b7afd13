"""django-q2 task entry points: they take ids and call services (log lines inside carry the job id)."""

from portal.logs import job_logging
from transcription.services import (
    transcription_orphans_sweep,
    transcription_retention_apply,
    transcription_run,
    transcription_sweep,
    webhook_deliver,
)


def transcription_run_task(transcription_id: str) -> str:
    with job_logging(transcription_id):
        return transcription_run(transcription_id=transcription_id)


def transcription_sweep_task() -> dict:
    return transcription_sweep()


def transcription_orphans_sweep_task() -> dict:
    return transcription_orphans_sweep()


def transcription_retention_task() -> dict:
    return transcription_retention_apply()


def webhook_deliver_task(transcription_id: str, attempt: int = 1) -> bool:
    with job_logging(transcription_id):
        return webhook_deliver(transcription_id=transcription_id, attempt=attempt)


def speaker_enroll_task(speaker_id: str) -> str:
    from transcription.services.speakers import speaker_enroll

    return speaker_enroll(speaker_id=speaker_id)


def speaker_identify_task(identification_id: str) -> str:
    from transcription.services.speakers import identification_run

    return identification_run(identification_id=identification_id)
