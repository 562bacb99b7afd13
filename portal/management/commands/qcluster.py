"""`manage.py qcluster`: django-q2's cluster, with a shutdown that always ends.

django-q2 stops a cluster from its SIGTERM/SIGINT handler: it sets a multiprocessing Event and joins the
sentinel process. A SIGTERM sent to the whole process group (systemd, docker, `timeout`, `kill -TERM --
-<pgid>`: how `make run` is stopped) also reaches the sentinel and the workers, whose SIGTERM action is
the default one: they are gone at once, and Event.set() then waits forever for the dead sentinel to
acknowledge it. A second signal re-enters the handler, which deadlocks on the Event's own lock.

Here the signal handler only notes the first signal; the main loop then stops the cluster:
- if the sentinel is gone (the signal reached the group), it leaves the Events alone and exits;
- otherwise (a signal to this process alone, or Ctrl-C, which the sentinel ignores) it stops the cluster
  the django-q2 way, letting workers finish their task, and after Q_STOP_TIMEOUT seconds (default 6)
  kills the sentinel and its workers. An interrupted ASR job is not lost: its lease expires and the
  sweeper queues it again (the job row is the truth, not django-q2's task).

Warm start (settings.Q_WORKER_WARMUP, by cluster name; the asr cluster loads its model): each worker process
runs the warm-up callable when it spawns, before it reads a task, so no job pays for the model load (then
freezes what it made: portal.gc_freeze). Until
every worker of the first pool reported success, the pusher pulls nothing from the broker. A worker whose
warm-up fails stops the cluster: one log line says why and what to set, the command exits with status 1,
and no job is taken (they stay queued for a cluster that can run them).
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time

import django_q.cluster
from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone
from django.utils.module_loading import import_string
from django_q.cluster import Cluster, get_mp_context
from django_q.conf import Conf, logger
from django_q.management.commands import qcluster
from django_q.signals import post_spawn

from portal.cpu_priority import lower_priority
from portal.gc_freeze import freeze_long_lived
from portal.heartbeats import cluster_heartbeat, cluster_heartbeat_end

# The sentinel dies this soon after a group SIGTERM (default action); give it that long to show it.
_DYING_GRACE_S = 0.5


def _descendants(pid: int) -> list[int]:
    """Every process below `pid`, children first."""
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    found: list[int] = []
    for child in map(int, out):
        found.append(child)
        found.extend(_descendants(child))
    return found


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _keep_connections() -> None:
    """A cluster's processes are one thread each and run task after task: each keeps its PostgreSQL connection
    for Q_DB_CONN_MAX_AGE seconds (checked before reuse) instead of connecting again for every task, which
    cost an ASR job a connect and the server a new backend process (issue 13). django-q2 closes them before
    it forks. Unless DB_CONN_MAX_AGE or a pool says otherwise."""
    db = settings.DATABASES["default"]
    if "sqlite" in db["ENGINE"] or db.get("OPTIONS", {}).get("pool") or db.get("CONN_MAX_AGE"):
        return
    db["CONN_MAX_AGE"] = settings.Q_DB_CONN_MAX_AGE  # the same dict django.db's connections read


class WarmStart:
    """Workers warm up (e.g. load the ASR model) at spawn; the broker is read only once all of the first pool is warm.

    Built in the command's process before the cluster forks: the Event and the report queue are shared with
    the sentinel, its workers and its pusher (django-q2 forks them all).
    """

    def __init__(self, warm_up_path: str, workers: int):
        ctx = get_mp_context()
        self.warm_up_path = warm_up_path
        self.workers = max(1, int(workers))
        self.ready = ctx.Event()
        self.reports = ctx.Queue()
        self.warm = 0
        self.started = time.monotonic()

    def install(self) -> None:
        post_spawn.connect(self._on_spawn, dispatch_uid="tingxie-warm-start")
        # django-q2 spawns the pusher through this module global: the gated one waits for `ready`.
        django_q.cluster.pusher = _gated_pusher(django_q.cluster.pusher, self.ready)

    def _on_spawn(self, sender, proc_name, **kwargs) -> None:
        """In each worker process, before its first task."""
        started = time.monotonic()
        try:
            loaded = import_string(self.warm_up_path)()
        except Exception as exc:  # noqa: BLE001 - any failure means this worker must not take tasks
            self.reports.put(("failed", os.getpid(), _one_line(exc)))
            while True:  # never reach the task loop; the command stops the cluster
                time.sleep(60)
        frozen = freeze_long_lived()  # the model lives as long as the worker (portal.gc_freeze)
        self.reports.put(
            ("ok", os.getpid(), f"{loaded} in {time.monotonic() - started:.1f} s, {frozen} objects frozen")
        )

    def failure(self) -> str | None:
        """In the command's process: read the workers' reports; the first failure's message, if any."""
        while True:
            try:
                status, pid, text = self.reports.get_nowait()
            except queue.Empty:
                return None
            if status == "failed":
                return text
            self.warm += 1
            logger.info("Worker %s warm: %s", pid, text)
            if self.warm >= self.workers and not self.ready.is_set():
                self.ready.set()
                logger.info(
                    "Q Cluster %s: %d worker(s) warm after %.1f s; taking tasks.",
                    Conf.CLUSTER_NAME, self.warm, time.monotonic() - self.started,
                )  # fmt: skip


def _gated_pusher(pusher, ready):
    def gated_pusher(task_queue, event, broker=None):
        while not ready.wait(0.2):
            if event.is_set():  # stopped before any worker was warm
                return None
        return pusher(task_queue, event, broker)

    return gated_pusher


class BoundedStopCluster(Cluster):
    """A Cluster whose signal handler only records the signal; `run()` stops it within a bound."""

    def __init__(self, *args, warm_start: WarmStart | None = None, **kwargs):
        self.signalled: int | None = None
        self.warm_start = warm_start
        self.failed: str | None = None
        super().__init__(*args, **kwargs)  # installs self.sig_handler for SIGTERM and SIGINT

    def sig_handler(self, signum, frame):
        if self.signalled is None:
            self.signalled = signum

    def run(self, *, run_once: bool = False) -> None:
        """Start, wait for a signal (or the sentinel's end), then stop within the bound."""
        try:
            self.start()
        except RuntimeError:
            # The sentinel died while starting: a group signal does that; anything else is a real failure.
            if self.signalled is None:
                raise
        if settings.WORKER_METRICS_PORT:
            from portal.metrics import serve_in_thread

            serve_in_thread(host=settings.WORKER_METRICS_HOST, port=settings.WORKER_METRICS_PORT)
        beat = _Beat(Conf.CLUSTER_NAME)
        while not run_once and self.signalled is None and self.sentinel.is_alive():
            if self.warm_start is not None and (failure := self.warm_start.failure()):
                self.failed = failure
                logger.critical("Q Cluster %s cannot take tasks: %s", Conf.CLUSTER_NAME, failure)
                break
            if self.warm_start is None or self.warm_start.ready.is_set():
                beat.maybe()  # a cluster still loading its model is not ready for work: no heartbeat yet
            time.sleep(0.2)
        beat.end()
        if self.warm_start is not None and not self.warm_start.ready.is_set():
            self.end_cold()
        else:
            self.stop_within(float(os.environ.get("Q_STOP_TIMEOUT", "6")))

    def end_cold(self) -> None:
        """Stop before the workers were warm: the pusher has taken nothing from the broker, so nothing is lost
        by ending the processes now instead of waiting for a model load to finish. SIGTERM's default action
        (django-q2's sentinel and everything it forked) ends them, as a signal to the process group would."""
        sentinel = self.sentinel
        if not sentinel.is_alive():
            return
        logger.info("Q Cluster %s stopping before its workers were warm (no task taken): ending them.", self.name)
        for pid in [*_descendants(sentinel.pid), sentinel.pid]:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        sentinel.join(5)
        if sentinel.is_alive():
            self.stop_within(0)

    def stop_within(self, timeout_s: float) -> None:
        sentinel = self.sentinel
        if self.signalled == signal.SIGTERM:
            deadline = time.monotonic() + _DYING_GRACE_S
            while sentinel.is_alive() and time.monotonic() < deadline:
                time.sleep(0.02)
        if not sentinel.is_alive():
            logger.info("Q Cluster %s: sentinel gone, exiting.", self.name)
            return
        logger.info("Q Cluster %s stopping (up to %.0f s).", self.name, timeout_s)
        deadline = time.monotonic() + timeout_s
        # In a thread: if the sentinel died after all, Event.set() would never return.
        setter = threading.Thread(target=self.stop_event.set, daemon=True)
        setter.start()
        setter.join(timeout_s)
        sentinel.join(max(0.0, deadline - time.monotonic()))
        if sentinel.is_alive():
            stragglers = [*_descendants(sentinel.pid), sentinel.pid]
            logger.warning("Q Cluster %s did not stop within %.0f s: killing %s.", self.name, timeout_s, stragglers)
            for pid in stragglers:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            sentinel.join(2)
        else:
            logger.info("Q Cluster %s has stopped.", self.name)


class _Beat:
    """The cluster's liveness row (readiness and metrics read it), refreshed every CLUSTER_HEARTBEAT_INTERVAL_S
    from the main process (the sentinel and its workers are already forked: no connection is shared)."""

    def __init__(self, cluster: str):
        self.cluster = cluster
        self.started_at = timezone.now()
        self.next_at = 0.0

    def maybe(self) -> None:
        if time.monotonic() < self.next_at:
            return
        self.next_at = time.monotonic() + settings.CLUSTER_HEARTBEAT_INTERVAL_S
        try:
            cluster_heartbeat(cluster=self.cluster, started_at=self.started_at)
        except DatabaseError as exc:  # the database is down: readiness says so; beat again when it is back
            logger.warning("Q Cluster %s: heartbeat not recorded: %s", self.cluster, exc)
            connection.close()

    def end(self) -> None:
        try:
            cluster_heartbeat_end(cluster=self.cluster)
        except DatabaseError:
            pass  # the row ages out
        connection.close()


class Command(qcluster.Command):
    def handle(self, *args, **options):
        # As django-q2's command: the SECRET_KEY signs task payloads; the name picks the cluster.
        settings.SECRET_KEY  # noqa: B018
        if options.get("cluster_name"):
            os.environ["Q_CLUSTER_NAME"] = options["cluster_name"]
        if os.environ.get("Q_CLUSTER_NAME") == "asr" and settings.ASR_NICE > 0:
            # Inherited by the sentinel and every worker (see settings.ASR_NICE and portal.cpu_priority).
            lowered = lower_priority(settings.ASR_NICE)
            logger.info("ASR cluster runs %d steps nicer (%s)", settings.ASR_NICE, lowered)
        _keep_connections()
        warm_up = settings.Q_WORKER_WARMUP.get(Conf.CLUSTER_NAME)
        warm_start = WarmStart(warm_up, Conf.WORKERS) if warm_up else None
        if warm_start is not None:
            warm_start.install()
        cluster = BoundedStopCluster(warm_start=warm_start)
        cluster.run(run_once=options.get("run_once", False))
        if cluster.failed:
            sys.exit(1)
