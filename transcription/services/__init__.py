"""Writes for transcriptions, one module per seam:

- submit: validate, store, hold and queue (idempotency, cache);
- lifecycle: the worker side (claim, heartbeat, hold cover, run, finalize, fail), cancel, delete;
- sweep: expired leases re-queued, lost queue hops enqueued again;
- rows: the worker's per-job reads of the row as plain SQL (no ORM compile per call);
- retention: each tenant's audio and transcripts expired after its retention days;
- orphans: the sweep of stored audio no row references and stale temporary upload files (killed uploads);
- webhooks: signed result delivery with backoff;
- hotwords: saved lists and the one merge rule;
- common: the row lock and the task hops they share.
"""

from transcription.services.common import LeaseLost, transcription_enqueue, transcription_lock, webhook_enqueue
from transcription.services.hotwords import hotword_list_save, hotwords_merge
from transcription.services.lifecycle import (
    Claim,
    transcription_cancel,
    transcription_claim,
    transcription_delete,
    transcription_fail,
    transcription_finalize,
    transcription_heartbeat,
    transcription_hold_cover,
    transcription_run,
)
from transcription.services.orphans import transcription_orphans_sweep
from transcription.services.retention import transcription_retention_apply
from transcription.services.submit import options_normalize, transcription_create
from transcription.services.sweep import transcription_sweep
from transcription.services.webhooks import WEBHOOK_BACKOFF, webhook_deliver, webhook_payload, webhook_sign

__all__ = [
    "WEBHOOK_BACKOFF",
    "Claim",
    "LeaseLost",
    "hotword_list_save",
    "hotwords_merge",
    "options_normalize",
    "transcription_cancel",
    "transcription_claim",
    "transcription_create",
    "transcription_delete",
    "transcription_enqueue",
    "transcription_fail",
    "transcription_finalize",
    "transcription_heartbeat",
    "transcription_hold_cover",
    "transcription_lock",
    "transcription_orphans_sweep",
    "transcription_retention_apply",
    "transcription_run",
    "transcription_sweep",
    "webhook_deliver",
    "webhook_enqueue",
    "webhook_payload",
    "webhook_sign",
]
