"""django-q2 task entry points: they take ids and call services."""

from transcription.services import transcription_run, transcriptions_sweep, webhook_deliver


def transcription_run_task(job_id: str) -> str:
    return transcription_run(job_id=job_id)


def transcription_sweep_task() -> dict:
    return transcriptions_sweep()


def webhook_deliver_task(job_id: str, attempt: int = 1) -> bool:
    return webhook_deliver(job_id=job_id, attempt=attempt)
