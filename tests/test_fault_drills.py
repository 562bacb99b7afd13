"""Fault drills (issue 14): real faults against real qcluster workers on PostgreSQL, then the money invariants.

1. an ASR worker SIGKILLed mid-job, five times;
2. every database connection of the test database terminated while jobs run (the web keeps answering);
3. the Redis broker losing its queue (the sweeper re-enqueues, every job succeeds once);
4. a webhook receiver that hangs (the delivery times out and is retried; other deliveries are not held up).

Each drill ends with: every transcription terminal, at most one debit per transcription, failed ones uncharged
with their holds released, and the stored balance equal to the ledger (assert_ledger_consistent).
Sizes are bounded and leases short (JOB_LEASE_SECONDS) so the file fits in a few minutes on two cores;
the sweep is called directly (services.transcription_sweep) instead of waiting for the scheduler.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from io import StringIO

import numpy as np
import pytest
import requests
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import close_old_connections, connection

from billing.models import BalanceAccount, LedgerEntry
from tests.audio_samples import silence, speak_fixture, write_wav
from tests.conftest import WorkerProcess, assert_ledger_consistent, database_url, require_postgresql, wait_for
from transcription import services
from transcription.models import Transcription

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

LEASE_S = 2
TERMINAL = ("succeeded", "failed", "canceled")


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


_SPEECH: dict[str, np.ndarray] = {}


def speech(seconds: float, variant: int) -> np.ndarray:
    """`seconds` of repeated fixture speech; `variant` changes the leading silence (distinct audio: no cache hit)."""
    if "unit" not in _SPEECH:
        _SPEECH["unit"] = np.concatenate([speak_fixture("zh_park"), silence(0.5)])
    unit = _SPEECH["unit"]
    reps = int(seconds * 16000 / len(unit)) + 1
    body = np.tile(unit, reps)[: int(seconds * 16000)]
    return np.concatenate([silence(0.05 * (variant + 1)), body]).astype(np.float32)


def create_job(tenant, tmp_path, samples: np.ndarray, name: str, webhook_url: str = "") -> Transcription:
    data = write_wav(tmp_path / name, samples).read_bytes()
    return services.transcription_create(
        tenant=tenant,
        uploaded_file=SimpleUploadedFile(name, data, content_type="audio/wav"),
        options={},
        webhook_url=webhook_url,
    )


def debits(transcription_id) -> int:
    return LedgerEntry.objects.filter(transcription_id=transcription_id, kind="debit").count()


def assert_money_invariants(tenant, ids) -> dict[str, int]:
    """Every job terminal; <= 1 debit each; failed ones uncharged with the hold released; ledger consistent."""
    states: dict[str, int] = {}
    for t in Transcription.objects.filter(pk__in=ids):
        states[t.status] = states.get(t.status, 0) + 1
        assert t.status in TERMINAL, (t.pk, t.status, t.attempt)
        assert debits(t.pk) <= 1, t.pk
        released = LedgerEntry.objects.filter(transcription_id=t.pk, kind="release").count()
        if t.status == "succeeded":
            assert debits(t.pk) == 1 and t.billed_tokens == t.tokens <= t.held_tokens, t.pk
        else:
            assert debits(t.pk) == 0 and not t.billed_tokens, (t.pk, t.status, t.error_code)
            assert released == 1, (t.pk, "the hold of a failed job is released once")
    assert BalanceAccount.objects.get(tenant=tenant).held == 0
    assert_ledger_consistent(tenant)
    return states


def kill_group(worker: WorkerProcess) -> None:
    os.killpg(worker.proc.pid, signal.SIGKILL)
    worker.proc.wait(timeout=10)
    worker.stop()  # closes the log; the process group is already gone


def sweep_until_terminal(ids, *, timeout: float, interval: float = 0.5) -> None:
    def done():
        services.transcription_sweep()
        return not Transcription.objects.filter(pk__in=ids).exclude(status__in=TERMINAL).exists()

    wait_for(done, timeout=timeout, interval=interval, message="every drilled job to end")


# --- 1. SIGKILL mid-job ------------------------------------------------------------------------------------


def test_worker_sigkilled_mid_job_five_times(tenant, grant, media, tmp_path, settings):
    """Job A is killed JOB_MAX_ATTEMPTS (3) times and fails worker_lost, uncharged; job B is killed twice and
    succeeds on its last allowed attempt, charged once. Five SIGKILLs of the worker's process group in all,
    each while the row is `running`: two mid-recognition (after the first progress heartbeat), three just after
    the claim (before recognition begins)."""
    require_postgresql()  # fails, not skips, when CI asks for PostgreSQL (TINGXIE_REQUIRE_POSTGRES=1)
    settings.JOB_MAX_ATTEMPTS = 3
    grant(tenant, 100_000)
    env = {"JOB_LEASE_SECONDS": str(LEASE_S), "ASR_BATCH_SIZE_S": "5", "JOB_MAX_ATTEMPTS": "3"}
    kills: list[tuple[int, float]] = []

    def kill_while_running(job: Transcription, attempt: int, *, recognizing: bool) -> None:
        """Kill as soon as the row is `running` (claimed: the warm worker loaded its model before it took the task),
        or, `recognizing`, once the first heartbeat reports progress (mid-recognition)."""
        worker = WorkerProcess(extra_env=env)
        least = 0.04 if recognizing else -1.0  # 0.05: the model is loaded and recognition has begun
        try:
            wait_for(
                lambda: Transcription.objects.filter(
                    pk=job.pk, status="running", attempt=attempt, progress__gt=least
                ).exists(),
                timeout=180, interval=0.05, message=f"job {job.pk} attempt {attempt} running",
            )  # fmt: skip
        except BaseException:
            worker.stop()
            raise
        kill_group(worker)
        row = Transcription.objects.get(pk=job.pk)
        assert row.status == "running" and row.attempt == attempt, "killed mid-job, not after it"
        assert BalanceAccount.objects.get(tenant=tenant).held == row.held_tokens  # the hold stays, uncharged
        assert debits(job.pk) == 0
        kills.append((attempt, row.progress))

    def sweep_after_lease() -> dict:
        time.sleep(LEASE_S + 0.3)
        return services.transcription_sweep()

    a = create_job(
        tenant, tmp_path, speech(300, 0), "a.wav"
    )  # long enough to be caught mid-job (batched windows are fast)
    for attempt in (1, 2, 3):
        kill_while_running(a, attempt, recognizing=attempt == 1)
        expected = {"requeued": 0, "failed": 1} if attempt == 3 else {"requeued": 1, "failed": 0}
        assert sweep_after_lease() == {**expected, "reenqueued": 0}
    a.refresh_from_db()
    assert a.status == "failed" and a.error_code == "worker_lost" and a.attempt == 3
    assert debits(a.pk) == 0 and BalanceAccount.objects.get(tenant=tenant).held == 0

    b = create_job(tenant, tmp_path, speech(300, 1), "b.wav")
    for attempt in (1, 2):
        kill_while_running(b, attempt, recognizing=attempt == 2)
        assert sweep_after_lease() == {"requeued": 1, "failed": 0, "reenqueued": 0}
    assert len(kills) == 5

    t0 = time.monotonic()
    # The recovering worker holds a normal lease: a 2 s lease would expire during its model load (W001).
    worker = WorkerProcess(extra_env={**env, "JOB_LEASE_SECONDS": "30"})
    try:
        sweep_until_terminal([a.pk, b.pk], timeout=120)
    finally:
        worker.stop()
    b.refresh_from_db()
    assert b.status == "succeeded" and b.attempt == 3, (b.status, b.error_code, worker.log()[-2000:])
    # A late re-delivery of an old task (the killed workers' locked broker entries come back) changes nothing.
    assert services.transcription_run(transcription_id=b.pk) == "skipped"
    assert services.transcription_run(transcription_id=a.pk) == "skipped"
    states = assert_money_invariants(tenant, [a.pk, b.pk])
    assert states == {"failed": 1, "succeeded": 1}
    call_command("ledger_verify", stdout=StringIO())  # exits non-zero (CommandError) on any drift
    print(f"drill 1: kills={kills} final run {time.monotonic() - t0:.1f}s states={states}")


# --- 2. database connections terminated while jobs run -------------------------------------------------------

TERMINATE_SQL = (
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
)


def terminate_test_database_backends() -> int:
    """From a connection of its own to THE TEST DATABASE, end every other backend of that database only."""
    import psycopg

    name = connection.settings_dict["NAME"]
    assert name.startswith("test_"), f"refusing to terminate backends of {name!r}"
    with psycopg.connect(database_url(), autocommit=True) as conn:
        assert conn.execute("SELECT current_database()").fetchone()[0] == name
        return sum(1 for (ok,) in conn.execute(TERMINATE_SQL).fetchall() if ok)


def _is_json(response: requests.Response) -> bool:
    if not response.headers.get("Content-Type", "").startswith("application/json"):
        return False
    try:
        response.json()
    except ValueError:
        return False
    return True


def test_database_connections_terminated_while_jobs_run(tenant, api_key, grant, media, tmp_path):
    """pg_terminate_backend on every connection of the test database, three times over three seconds, while a
    worker recognizes and the web answers polls: the jobs recover (lease expiry + sweep) or fail uncharged,
    the ledger stays consistent, and the web keeps answering (JSON after the outage)."""
    require_postgresql()  # fails, not skips, when CI asks for PostgreSQL (TINGXIE_REQUIRE_POSTGRES=1)
    from tests.transcription.test_async_wait import Uvicorn

    grant(tenant, 100_000)
    web = Uvicorn(media)
    worker = WorkerProcess(extra_env={"JOB_LEASE_SECONDS": "5", "ASR_BATCH_SIZE_S": "5"})
    headers = {"Authorization": f"Bearer {api_key[1]}"}
    try:
        warm = create_job(tenant, tmp_path, speech(3, 9), "warm.wav")  # the model loads before the drill
        wait_for(lambda: Transcription.objects.filter(pk=warm.pk, status="succeeded").exists(),
                 timeout=60, message="warm-up job")  # fmt: skip
        jobs = [create_job(tenant, tmp_path, speech(180, i), f"j{i}.wav") for i in range(4)]  # ~3 s of work each
        ids = [j.pk for j in jobs]
        wait_for(lambda: Transcription.objects.filter(pk__in=ids, status="running", progress__gt=0.05).exists(),
                 timeout=60, interval=0.05, message="a job mid-recognition")  # fmt: skip

        answers: list[tuple[int, bool, str]] = []
        stop = threading.Event()

        def poll_web():
            while not stop.is_set():
                try:
                    r = requests.get(f"{web.url}/api/v1/transcriptions/{ids[0]}", headers=headers, timeout=10)
                    answers.append((r.status_code, _is_json(r), r.headers.get("Content-Type", "")))
                except requests.RequestException as exc:
                    answers.append((0, False, repr(exc)))
                time.sleep(0.05)

        poller = threading.Thread(target=poll_web, daemon=True)
        poller.start()
        terminated = []
        for _ in range(3):
            terminated.append(terminate_test_database_backends())
            time.sleep(1.5)
        stop.set()
        poller.join(timeout=15)
        connection.close()  # this test's own backend was terminated too
        close_old_connections()
        states_after_outage = list(Transcription.objects.filter(pk__in=ids).values_list("status", flat=True))

        sweep_until_terminal(ids, timeout=120)
        after = requests.get(f"{web.url}/api/v1/transcriptions/{ids[0]}", headers=headers, timeout=10)
        assert after.status_code == 200 and _is_json(after), (after.status_code, after.text[:300])
        assert worker.proc.poll() is None, "the worker cluster survived the outage"
    finally:
        worker.stop()
        web.stop()
    assert all(n >= 1 for n in terminated), terminated
    assert answers and all(code for code, _, _ in answers), f"the web stopped answering: {answers}"
    # During the outage the API answers JSON: 200, or 503 service_unavailable; never an HTML page.
    html_500 = [a for a in answers if a[0] == 500 and not a[1]]
    assert all(is_json for _, is_json, _ in answers), answers
    assert all(code in (200, 503) for code, _, _ in answers), answers
    states = assert_money_invariants(tenant, ids + [warm.pk])
    print(
        f"drill 2: terminated={terminated} web answers={len(answers)} non-200={[a for a in answers if a[0] != 200]}"
        f" html_500={len(html_500)} states after outage={states_after_outage} final={states}"
    )


# --- 3. the Redis broker loses its queue ------------------------------------------------------------------------

ASR_QUEUE_KEY = "django_q:asr:q"  # django-q2's Redis list for the asr cluster (brokers/redis_broker.py)


@pytest.mark.redis
def test_redis_queue_lost_then_reenqueued_by_the_sweeper(tenant, grant, media, tmp_path, settings, monkeypatch):
    """Jobs are enqueued on the Redis broker with no worker running; the queue is then lost (only this test's
    own queue key, in the drill's own Redis database: the shared server is not restarted). The sweeper
    re-enqueues the queued jobs whose task is older than JOB_REQUEUE_AFTER_SECONDS; a worker on Redis then
    runs each exactly once, charged once."""
    require_postgresql()  # fails, not skips, when CI asks for PostgreSQL (TINGXIE_REQUIRE_POSTGRES=1)
    import redis
    from django_q.conf import Conf

    redis_url = os.environ.get("TINGXIE_DRILL_REDIS_URL", "redis://127.0.0.1:6379/13")
    r = redis.from_url(redis_url)
    assert r.llen(ASR_QUEUE_KEY) == 0, f"{ASR_QUEUE_KEY} in {redis_url} is not empty: not the drill's own database"
    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "REDIS", redis_url)
    settings.JOB_REQUEUE_AFTER_SECONDS = 1
    grant(tenant, 100_000)
    try:
        ids = [create_job(tenant, tmp_path, speech(5, i), f"r{i}.wav").pk for i in range(4)]
        assert r.llen(ASR_QUEUE_KEY) == len(ids)  # exactly this test's tasks
        assert r.delete(ASR_QUEUE_KEY) == 1  # the broker lost them
        assert services.transcription_sweep() == {"requeued": 0, "failed": 0, "reenqueued": 0}  # not stale yet
        time.sleep(1.2)
        assert services.transcription_sweep() == {"requeued": 0, "failed": 0, "reenqueued": len(ids)}
        assert r.llen(ASR_QUEUE_KEY) == len(ids)
        settings.JOB_REQUEUE_AFTER_SECONDS = 300  # no more re-enqueues while the worker loads its model
        t0 = time.monotonic()
        worker = WorkerProcess(
            extra_env={"Q_BROKER": "redis", "REDIS_URL": redis_url, "CACHE_KEY_PREFIX": f"drill-{os.getpid()}"}
        )
        try:
            wait_for(lambda: Transcription.objects.filter(pk__in=ids, status="succeeded").count() == len(ids),
                     timeout=90, message="every re-enqueued job to succeed")  # fmt: skip
        finally:
            worker.stop()
        elapsed = time.monotonic() - t0
    finally:
        r.delete(ASR_QUEUE_KEY)  # empty by now; never left behind
    assert all(a == 1 for a in Transcription.objects.filter(pk__in=ids).values_list("attempt", flat=True))
    states = assert_money_invariants(tenant, ids)
    assert states == {"succeeded": len(ids)}
    print(f"drill 3: {len(ids)} jobs lost with the queue, re-enqueued, states={states} in {elapsed:.1f}s")


# --- 4. a webhook receiver that hangs ------------------------------------------------------------------------

HANG_TIMEOUT_S = 1.0


class HangingReceiver:
    """Accepts connections and never answers (nor closes them)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self):
        self.sock.close()
        for conn in self.accepted:
            conn.close()


def _finished(tenant, tmp_path, url: str, variant: int) -> Transcription:
    job = create_job(tenant, tmp_path, speech(1, variant), f"w{variant}.wav", webhook_url=url)
    claim = services.transcription_claim(transcription_id=job.pk)
    assert services.transcription_finalize(claim=claim, text="你好", segments=[], language="zh", duration_s=1.0)
    return job


def test_hanging_webhook_receiver_times_out_is_retried_and_blocks_nothing(tenant, grant, media, tmp_path, monkeypatch):
    """A receiver that accepts and never answers: the delivery times out (10 s asked of post_pinned, shortened
    here to 1 s), is marked retrying with the next attempt scheduled, and a delivery to a good receiver made
    at the same time succeeds at once."""
    require_postgresql()  # fails, not skips, when CI asks for PostgreSQL (TINGXIE_REQUIRE_POSTGRES=1)
    from django_q.models import Schedule

    from tests.transcription.test_webhooks import Receiver
    from transcription.services import webhooks

    real_post = webhooks.post_pinned
    timeouts = []

    def short_timeout(url, body, headers, *, timeout=10, allow_private=False):
        timeouts.append(timeout)
        return real_post(url, body, headers, timeout=HANG_TIMEOUT_S, allow_private=allow_private)

    monkeypatch.setattr(webhooks, "post_pinned", short_timeout)
    grant(tenant, 10_000)
    hanging, good = HangingReceiver(), Receiver([200])
    try:
        stuck = _finished(tenant, tmp_path, hanging.url, 1)
        fine = _finished(tenant, tmp_path, good.url, 2)

        def deliver(job):
            try:
                t0 = time.monotonic()
                return services.webhook_deliver(transcription_id=job.pk), time.monotonic() - t0, time.monotonic()
            finally:
                connection.close()  # this thread's own connection

        with ThreadPoolExecutor(2) as pool:
            slow = pool.submit(deliver, stuck)
            time.sleep(0.1)  # the hanging delivery is under way first
            fast = pool.submit(deliver, fine)
            fast_ok, fast_s, fast_end = fast.result(timeout=10)
            assert not slow.done(), "the good delivery finished while the hanging one still waits"
            slow_ok, slow_s, slow_end = slow.result(timeout=30)
    finally:
        hanging.close()
        good.close()
    assert fast_ok is True and fast_s < 0.5 and len(good.requests) == 1
    assert fast_end < slow_end
    assert slow_ok is False and HANG_TIMEOUT_S - 0.1 <= slow_s < HANG_TIMEOUT_S + 3 and len(hanging.accepted) == 1
    assert timeouts == [10, 10]  # what the service asks for (shortened here)
    stuck.refresh_from_db()
    fine.refresh_from_db()
    assert (stuck.webhook_status, stuck.webhook_attempts) == ("retrying", 1)
    assert (fine.webhook_status, fine.webhook_attempts) == ("delivered", 1)
    retry = Schedule.objects.get(name=f"webhook-{stuck.pk}-2")
    assert retry.func == "transcription.tasks.webhook_deliver_task" and retry.args == repr((str(stuck.pk), 2))
    assert not Schedule.objects.filter(name__startswith=f"webhook-{fine.pk}").exists()
    assert_money_invariants(tenant, [stuck.pk, fine.pk])
    print(f"drill 4: good delivery {fast_s:.2f}s while the hanging one timed out after {slow_s:.2f}s, retry scheduled")
