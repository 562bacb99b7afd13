"""Cross-job batches on an ASR worker.

A worker's task claims its transcription, then the other ready ones (up to the device's BatchLimits: recordings,
and a wait of a few tens of ms for more), and drives each one's recognition steps: every round, each
transcription contributes its next window and the engine recognizes all of them in shared model calls
(engine.transcribe_windows). Between rounds the batch takes in newly ready transcriptions, so a long recording
streams its windows next to short ones instead of holding them up.

Each transcription keeps its own life (services.lifecycle): claimed under its row lock (attempt + lease),
heartbeats and hold cover through its own steps, finalized and billed only if its attempt is still current, or
failed on its own. A batch-mate that fails, is canceled or loses its lease never touches the others; a lost
database stops every attempt here (the sweeper re-queues them); the queued task of a transcription a batch took
finds it claimed and skips.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from transcription import instruments
from transcription.constants import SAMPLE_RATE
from transcription.engines.base import EngineResult
from transcription.models import Transcription
from transcription.services import lifecycle
from transcription.services.common import Status, segment_dicts
from transcription.services.rows import transcriptions_claim_write, transcriptions_queued, transcriptions_ready_locked

logger = logging.getLogger("transcription.batches")

# A batch stops taking in new transcriptions after this long; it finishes the ones it has (the other workers'
# tasks pick up the rest), so one task never runs for ever under steady load.
ADMIT_FOR_S = 30.0
# At most this many model calls' worth of audio (BatchLimits.budget_s) is taken per round, so a round stays
# short next to the lease; the leases of every transcription in the batch are renewed together between rounds.
ROUND_BUDGETS = 4
# The wait for late batch-mates (BatchLimits.max_wait_ms) pays off only under concurrent load; a lone job would
# pay all of it (20 ms on CPU, issue 13). A worker waits only if, within the last COMPANY_S seconds, one of its
# batches had more than one transcription or found another ready one.
COMPANY_S = 2.0
_company_at = float("-inf")


def _note_company() -> None:
    global _company_at
    _company_at = time.monotonic()


def _had_company() -> bool:
    return time.monotonic() - _company_at < COMPANY_S


class _DatabaseGone(Exception):
    pass


def transcription_claim_ready(*, limit: int) -> list[tuple[lifecycle.Claim, Transcription]]:
    """Claim up to `limit` queued transcriptions (oldest first) in one transaction: rows locked by another
    worker are skipped, each gets its next attempt and a lease, as transcription_claim() gives one."""
    if limit <= 0 or not transcriptions_queued():
        return []  # the usual answer when idle: one query, no transaction
    with transaction.atomic():
        rows = transcriptions_ready_locked(limit=limit, max_attempts=settings.JOB_MAX_ATTEMPTS)
        if not rows:
            return []
        now = timezone.now()
        lease = lifecycle._lease_until()
        transcriptions_claim_write([t.pk for t in rows], lease=lease, now=now)
    claimed = []
    for t in rows:
        t.attempt, t.status, t.lease_expires_at, t.progress = t.attempt + 1, Status.RUNNING, lease, 0.0
        t.segments = []
        t.started_at = t.started_at or now
        instruments.job_claimed(t)
        claim = lifecycle.Claim(transcription_id=t.pk, attempt=t.attempt)
        lifecycle.beat_start(claim)
        claimed.append((claim, t))
    return claimed


def transcription_leases_renew(claims: list[lifecycle.Claim]) -> int:
    """Extend the leases of running attempts in one statement (a canceled or taken-over one is left alone:
    its own next heartbeat or its finalize notices)."""
    match = Q()
    for claim in claims:
        match |= Q(pk=claim.transcription_id, attempt=claim.attempt)
    return Transcription.objects.filter(match, status=Status.RUNNING).update(lease_expires_at=lifecycle._lease_until())


def result_finalize(claim: lifecycle.Claim, result, row: Transcription | None = None) -> bool:
    """transcription_finalize() with a pipeline result (`row`: the row as claimed, which it need not read again)."""
    return lifecycle.transcription_finalize(
        claim=claim,
        row=row,
        text=result.text,
        segments=segment_dicts(result.segments),
        language=result.language,
        duration_s=result.duration_s,
        truncated=result.truncated,
        decode_ms=result.decode_ms,
        vad_ms=result.vad_ms,
        asr_ms=result.asr_ms,
        speech_s=result.speech_s,
        model=result.model,
        warnings=list(result.warnings),
    )


@dataclass(eq=False)
class _Job:
    claim: lifecycle.Claim
    row: Transcription | None = None  # as claimed
    steps: object = None
    window: object = None  # the window waiting for the next round; None once the job is done
    outcome: str = ""


class _Batch:
    def __init__(self, engine) -> None:
        self.engine = engine
        self.limits = engine.batch_limits()
        self.jobs: list[_Job] = []
        self.outcomes: dict = {}
        self.started = self.renewed = time.monotonic()
        self.rounds = 0

    # --- membership ----------------------------------------------------------------------------------
    def add(self, claim: lifecycle.Claim, row: Transcription) -> None:
        job = _Job(claim, row)
        self.jobs.append(job)
        try:
            job.steps = lifecycle.recognition_steps(
                claim, row, engine_name=self.engine.name, window_s=self.limits.window_s
            )
        except (OperationalError, InterfaceError) as exc:
            raise _DatabaseGone from exc
        except Exception as exc:  # noqa: BLE001 - this job only
            self._fail(job, exc)
            return
        self._advance(job, None)

    def _room(self) -> int:
        """How many more transcriptions the next round can take (jobs, and seconds of audio per round)."""
        if self.limits.max_jobs <= 1 or time.monotonic() - self.started > ADMIT_FOR_S:
            return 0
        round_s = sum(job.window.audio.shape[0] for job in self.jobs if job.window is not None) / SAMPLE_RATE
        if round_s >= ROUND_BUDGETS * self.limits.budget_s:
            return 0
        return self.limits.max_jobs - len(self.jobs)

    def admit(self, *, wait: bool) -> None:
        """Take in ready transcriptions while there is room; `wait`: once, give late ones max_wait_ms (only
        under concurrent load: see COMPANY_S)."""
        for claim, row in transcription_claim_ready(limit=self._room()):
            self.add(claim, row)
            self.renew_if_due()
        if len(self.jobs) > 1:
            _note_company()
        if wait and self.limits.max_wait_ms > 0 and self._room() > 0 and _had_company():
            time.sleep(self.limits.max_wait_ms / 1000)
            for claim, row in transcription_claim_ready(limit=self._room()):
                self.add(claim, row)
                self.renew_if_due()

    # --- one job's steps -----------------------------------------------------------------------------
    def _advance(self, job: _Job, value) -> None:
        """Send the job its window's result (or exception) and keep its next window; finish or fail it."""
        job.window = None  # its samples are freed before the job decodes its next chunk
        try:
            if value is None:
                job.window = next(job.steps)
            elif isinstance(value, BaseException):
                job.window = job.steps.throw(value)
            else:
                job.window = job.steps.send(value)
        except StopIteration as done:
            job.window = None
            self._end(job, "succeeded" if result_finalize(job.claim, done.value, job.row) else "stale")
        except (OperationalError, InterfaceError) as exc:
            raise _DatabaseGone from exc
        except Exception as exc:  # noqa: BLE001 - every failure ends this attempt with a reason
            self._fail(job, exc)

    def _fail(self, job: _Job, exc: BaseException) -> None:
        job.window = None
        tid, attempt = job.claim.transcription_id, job.claim.attempt
        failure = lifecycle.failure_of(exc, tid, attempt)
        if failure is None:
            self._end(job, "lease_lost")
            return
        lifecycle.transcription_fail(transcription_id=tid, attempt=attempt, code=failure[0], message=failure[1])
        self._end(job, "failed")

    def _end(self, job: _Job, outcome: str) -> None:
        job.outcome = outcome
        self.outcomes[job.claim.transcription_id] = outcome
        lifecycle.beat_end(job.claim)

    # --- rounds --------------------------------------------------------------------------------------
    def run_round(self) -> None:
        active = [job for job in self.jobs if job.window is not None]
        self.jobs = active
        if not active:
            return
        self.renew_if_due()
        windows = [job.window for job in active]
        started, cpu = time.perf_counter(), time.thread_time()
        results = self.engine.transcribe_windows(windows)
        audio_s = sum(w.audio.shape[0] for w in windows) / SAMPLE_RATE
        del windows
        self.rounds += 1
        logger.info(
            "ASR batch: %d transcriptions, %d speech pieces, %.1f s of audio, %.0f ms (%.0f ms CPU)",
            len(active), sum(r.extra.get("pieces", 0) for r in results if isinstance(r, EngineResult)),
            audio_s,
            (time.perf_counter() - started) * 1000, (time.thread_time() - cpu) * 1000,
        )  # fmt: skip
        for job, result in zip(active, results, strict=True):
            self._advance(job, result)
            self.renew_if_due()  # decoding the next chunks of many transcriptions can take a while
        self.jobs = [job for job in self.jobs if job.window is not None]
        self.renew_if_due()

    def renew_if_due(self) -> None:
        """Every quarter lease, one statement renews the leases of all transcriptions still in the batch."""
        if time.monotonic() - self.renewed > settings.JOB_LEASE_SECONDS / 4:
            live = [job.claim for job in self.jobs if not job.outcome]
            if live:
                transcription_leases_renew(live)
            self.renewed = time.monotonic()

    def stop_all(self, outcome: str) -> None:
        for job in self.jobs:
            if job.steps is not None:
                job.steps.close()
            if not job.outcome:
                self._end(job, outcome)
        self.jobs = []


def batch_run(first: lifecycle.Claim, row: Transcription) -> str:
    """Recognize `first` (claimed, its row as claimed) together with whatever else is ready; returns what
    happened to `first`."""
    tid = first.transcription_id
    try:
        engine = lifecycle.engine_ready(first)
    except (OperationalError, InterfaceError) as exc:
        return _interrupted({tid: ""}, tid, first.attempt, exc)
    except Exception as exc:  # noqa: BLE001 - the model is unavailable, or the lease was lost while loading
        failure = lifecycle.failure_of(exc, tid, first.attempt)
        if failure is None:
            return "lease_lost"
        lifecycle.transcription_fail(transcription_id=tid, attempt=first.attempt, code=failure[0], message=failure[1])
        return "failed"
    batch = _Batch(engine)
    try:
        batch.add(first, row)
        batch.admit(wait=True)
        while batch.jobs:
            batch.run_round()
            batch.admit(wait=False)
    except (_DatabaseGone, OperationalError, InterfaceError) as exc:
        batch.stop_all("interrupted")
        return _interrupted(batch.outcomes, tid, first.attempt, exc)
    except BaseException:
        batch.stop_all("interrupted")  # a worker shutdown: the leases expire and the sweeper re-queues
        raise
    return batch.outcomes.get(tid, "interrupted")


def _interrupted(outcomes: dict, tid, attempt: int, exc: BaseException) -> str:
    # The database went away (restart, failover, terminated backend): not the customers' fault and nothing to
    # write now. The attempts stop; their leases expire and the sweeper re-queues them.
    cause = exc.__cause__ or exc
    logger.warning("Transcription %s attempt %s interrupted by the database: %s", tid, attempt, cause)
    if not connection.in_atomic_block:
        connection.close()  # the next query reconnects
    return outcomes.get(tid) or "interrupted"
