"""Long-polls wake on PostgreSQL's NOTIFY when a job becomes final (migration 0009 + portal.pg_listen), not on
the next tick of the watcher (issue 13: the tick cost every waiting client half a tick on average)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from portal.longpoll import ColumnWatch
from portal.pg_listen import Listener
from transcription.models import Transcription
from transcription.selectors import FINAL_CHANNEL

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def job_of(tenant) -> Transcription:
    return Transcription.objects.create(tenant=tenant, sha256="0" * 64, status="queued")


def set_status_soon(job: Transcription, status: str, delay_s: float = 0.3) -> threading.Thread:
    def run():
        time.sleep(delay_s)
        Transcription.objects.filter(pk=job.pk).update(status=status)  # autocommit: committed at once
        from django.db import connection

        connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_final_status_notifies_the_job_id_and_other_changes_do_not(tenant):
    job = job_of(tenant)
    listener = Listener(FINAL_CHANNEL)
    try:
        assert listener.wait(0.2, lambda payload: True) == set()  # connects and listens; nothing yet
        writer = set_status_soon(job, "running", delay_s=0.0)
        assert listener.wait(1.0, lambda payload: True) == set(), "running is not final"
        writer.join()
        writer = set_status_soon(job, "succeeded", delay_s=0.0)
        started = time.monotonic()
        names = []
        assert listener.wait(10.0, lambda payload: names.append(payload) or True) == {str(job.pk)}
        assert time.monotonic() - started < 5 and names == [str(job.pk)]
        writer.join()
        Transcription.objects.filter(pk=job.pk).update(status="succeeded", progress=1.0)  # no change of status
        assert listener.wait(1.0, lambda payload: True) == set()
    finally:
        listener.close()


def test_a_long_poll_answers_on_the_notice_not_on_the_tick(tenant):
    job = job_of(tenant)
    other = job_of(tenant)
    # Ticks of 30 s: only the notice can answer the wait within a few seconds.
    watch = ColumnWatch(
        Transcription, "status", Transcription.FINAL_STATUSES, interval_s=30, channel=FINAL_CHANNEL,
        notified_interval_s=30,
    )  # fmt: skip

    async def main():
        waiting = asyncio.create_task(watch.wait(job.pk, timeout_s=60))
        await asyncio.sleep(0.5)
        writers = [set_status_soon(other, "canceled", delay_s=0.0), set_status_soon(job, "succeeded", delay_s=0.5)]
        started = time.monotonic()
        row = await waiting
        elapsed = time.monotonic() - started
        for writer in writers:
            writer.join()
        return row, elapsed

    row, elapsed = asyncio.run(main())
    assert row is not None and row.pk == job.pk and row.status == "succeeded"
    assert elapsed < 10, elapsed
    assert watch.listener._conn is None, "the listening connection is closed when the watcher ends"


def test_without_a_notice_the_tick_still_answers(tenant):
    """A change the trigger does not report (a row final before its waiter came) is found by the tick."""
    job = job_of(tenant)
    Transcription.objects.filter(pk=job.pk).update(status="failed")
    watch = ColumnWatch(
        Transcription, "status", Transcription.FINAL_STATUSES, interval_s=0.05, channel=FINAL_CHANNEL,
        notified_interval_s=30,
    )  # fmt: skip

    async def main():
        started = time.monotonic()
        row = await watch.wait(job.pk, timeout_s=20)
        return row, time.monotonic() - started

    row, elapsed = asyncio.run(main())
    assert row is not None and row.status == "failed" and elapsed < 10, elapsed
