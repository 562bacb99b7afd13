"""The long-poll watcher's looks are targeted (issue 13: each look read every waited-for row, 13% of the web
process's CPU under load): a notice reads its row only, a new waiter its own row only (or none, when its notice is
still to come), and only the safety-net tick (or every tick, without a listener) reads them all."""

from __future__ import annotations

import asyncio
import time

import pytest
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext

from portal.longpoll import ColumnWatch
from portal.pg_listen import Listener
from tests.transcription.test_final_notify import job_of, set_status_soon
from transcription.models import Transcription
from transcription.selectors import FINAL_CHANNEL

pytestmark = pytest.mark.django_db(transaction=True)


def postgres(test):
    """Needs PostgreSQL's NOTIFY (skipped on SQLite, failed where TINGXIE_REQUIRE_POSTGRES=1 asks for PostgreSQL)."""
    return pytest.mark.postgres(pytest.mark.usefixtures("require_postgres")(test))


def watch_of(*, interval_s: float = 0.05, notified_interval_s: float = 30, channel: str | None = FINAL_CHANNEL):
    """A watcher whose looks are recorded: (the ids looked at, the SQL of the look's queries), in order."""
    watch = ColumnWatch(
        Transcription, "status", Transcription.FINAL_STATUSES, interval_s=interval_s, channel=channel,
        notified_interval_s=notified_interval_s,
    )  # fmt: skip
    watch.looks = []
    reached = watch._reached

    def recorded(pks):
        with CaptureQueriesContext(connections["default"]) as queries:  # the watcher thread's connection
            found = reached(pks)
        watch.looks.append((set(pks), [query["sql"] for query in queries.captured_queries]))
        return found

    watch._reached = recorded
    return watch


async def until(predicate, timeout_s: float = 10.0):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def settled(watch, tasks):
    """Until the watcher has looked at the first waiters and has nothing left to look at; then forget its looks."""
    await until(lambda: watch.looks)
    await asyncio.sleep(0.3)
    assert not any(task.done() for task in tasks)
    watch.looks.clear()


def ids(*jobs) -> set:
    return {job.pk for job in jobs}


@postgres
def test_a_notice_reads_only_the_named_row_in_one_query_without_ordering(tenant):
    jobs = [job_of(tenant) for _ in range(5)]  # A..E
    watch = watch_of()

    async def main():
        tasks = [asyncio.create_task(watch.wait(job.pk, timeout_s=30)) for job in jobs]
        await settled(watch, tasks)
        writer = set_status_soon(jobs[0], "succeeded", delay_s=0.0)
        row = await asyncio.wait_for(tasks[0], 10)
        writer.join()
        assert not any(task.done() for task in tasks[1:])
        for task in tasks[1:]:
            task.cancel()
        return row

    row = asyncio.run(main())
    assert row.pk == jobs[0].pk and row.status == "succeeded"
    assert [pks for pks, _ in watch.looks] == [ids(jobs[0])], "B..E were not named: not read"
    [(_, queries)] = watch.looks
    assert len(queries) == 1 and "ORDER BY" not in queries[0].upper()


@postgres
def test_jobs_that_end_together_are_all_answered_by_their_notices(tenant):
    jobs = [job_of(tenant) for _ in range(4)]
    watch = watch_of()

    def end_three():
        with transaction.atomic():  # three notices, delivered together at commit
            Transcription.objects.filter(pk__in=[job.pk for job in jobs[:3]]).update(status="canceled")
        connection.close()

    async def main():
        tasks = [asyncio.create_task(watch.wait(job.pk, timeout_s=30)) for job in jobs]
        await settled(watch, tasks)
        started = time.monotonic()
        await asyncio.get_running_loop().run_in_executor(None, end_three)
        rows = await asyncio.wait_for(asyncio.gather(*tasks[:3]), 10)
        elapsed = time.monotonic() - started
        tasks[3].cancel()
        return rows, elapsed

    rows, elapsed = asyncio.run(main())
    assert [row.status for row in rows] == ["canceled"] * 3 and elapsed < 5, elapsed  # not the 30 s tick
    assert set().union(*(pks for pks, _ in watch.looks)) == ids(*jobs[:3]), "the fourth was not read"


@postgres
def test_a_new_waiter_is_read_alone_or_not_at_all_when_its_notice_is_still_to_come(tenant):
    a, b, new, unsure, quiet, notified = (job_of(tenant) for _ in range(6))
    watch = watch_of()
    before_listening = time.monotonic()

    async def main():
        tasks = [asyncio.create_task(watch.wait(job.pk, timeout_s=30)) for job in (a, b)]
        await settled(watch, tasks)

        # No `since`: read once, alone (its job may have ended before it came, unnoticed).
        tasks.append(asyncio.create_task(watch.wait(new.pk, timeout_s=30)))
        await until(lambda: watch.looks)
        await asyncio.sleep(0.2)
        assert [pks for pks, _ in watch.looks] == [ids(new)]
        watch.looks.clear()

        # Read before the watcher listened: its notice may have been missed, so it is read.
        tasks.append(asyncio.create_task(watch.wait(unsure.pk, timeout_s=30, since=before_listening)))
        await until(lambda: watch.looks)
        await asyncio.sleep(0.2)
        assert [pks for pks, _ in watch.looks] == [ids(unsure)]
        watch.looks.clear()

        # Read while listening and not notified since: its notice is still to come; nothing to read now.
        waiting = asyncio.create_task(watch.wait(quiet.pk, timeout_s=30, since=time.monotonic()))
        tasks.append(waiting)
        await asyncio.sleep(0.3)
        assert watch.looks == []

        # Notified between its read and its wait: read at once (not at the 30 s tick).
        since = time.monotonic()
        set_status_soon(notified, "failed", delay_s=0.0).join()
        await until(lambda: str(notified.pk) in watch.listener._heard)
        started = time.monotonic()
        row = await asyncio.wait_for(watch.wait(notified.pk, timeout_s=30, since=since), 10)
        assert row.status == "failed" and time.monotonic() - started < 5
        assert [pks for pks, _ in watch.looks] == [ids(notified)]
        watch.looks.clear()

        # And the quiet one's notice answers it.
        set_status_soon(quiet, "succeeded", delay_s=0.0).join()
        row = await asyncio.wait_for(waiting, 10)
        assert row.status == "succeeded" and [pks for pks, _ in watch.looks] == [ids(quiet)]
        for task in tasks:
            task.cancel()

    asyncio.run(main())


@postgres
def test_the_safety_tick_reads_every_waiter_and_answers_a_lost_notice(tenant):
    a, b = job_of(tenant), job_of(tenant)
    watch = watch_of(notified_interval_s=0.5)

    def end_without_notice():
        with transaction.atomic(), connection.cursor() as cursor:  # the trigger is off only inside
            cursor.execute("ALTER TABLE transcription_transcription DISABLE TRIGGER tingxie_transcription_final")
            Transcription.objects.filter(pk=b.pk).update(status="succeeded")
            cursor.execute("ALTER TABLE transcription_transcription ENABLE TRIGGER tingxie_transcription_final")
        connection.close()

    async def main():
        first = asyncio.create_task(watch.wait(a.pk, timeout_s=30))
        await settled(watch, [first])
        second = asyncio.create_task(watch.wait(b.pk, timeout_s=30, since=time.monotonic()))  # not read
        await asyncio.sleep(0.05)
        await asyncio.get_running_loop().run_in_executor(None, end_without_notice)
        row = await asyncio.wait_for(second, 10)
        first.cancel()
        return row

    row = asyncio.run(main())
    assert row.pk == b.pk and row.status == "succeeded"
    assert ids(a, b) in [pks for pks, _ in watch.looks], "the tick read both"
    assert all(pks == ids(a, b) for pks, _ in watch.looks), "and nothing read only one of them"


def test_without_a_listener_every_tick_reads_every_waiter(tenant):
    a, b = job_of(tenant), job_of(tenant)
    watch = watch_of(channel=None)

    async def main():
        tasks = [asyncio.create_task(watch.wait(job.pk, timeout_s=30, since=time.monotonic())) for job in (a, b)]
        await until(lambda: len(watch.looks) >= 3 and watch.looks[-1][0] == ids(a, b))
        watch.looks.clear()
        await until(lambda: len(watch.looks) >= 3)
        for task in tasks:
            task.cancel()

    asyncio.run(main())
    assert all(pks == ids(a, b) for pks, _ in watch.looks[:3])


@postgres
def test_the_listener_remembers_what_it_heard_since_it_listened(tenant):
    job, other = job_of(tenant), job_of(tenant)
    listener = Listener(FINAL_CHANNEL)
    try:
        before = time.monotonic()
        assert listener.wait(0.0, lambda payload: True) == set()  # listens from now on
        since = time.monotonic()
        assert not listener.unheard_since(str(job.pk), before), "a notice before it listened would be missed"
        assert listener.unheard_since(str(job.pk), since)
        set_status_soon(job, "canceled", delay_s=0.0).join()
        assert listener.wait(1.0, lambda payload: False) == set()  # heard, not wanted: it waited the whole time
        assert not listener.unheard_since(str(job.pk), since) and listener.unheard_since(str(other.pk), since)
        listener.close()
        assert not listener.unheard_since(str(other.pk), since), "not listening: it cannot tell"
    finally:
        listener.close()
