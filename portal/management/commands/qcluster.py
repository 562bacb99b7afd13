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
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

from django.conf import settings
from django_q.cluster import Cluster
from django_q.conf import logger
from django_q.management.commands import qcluster

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


class BoundedStopCluster(Cluster):
    """A Cluster whose signal handler only records the signal; `run()` stops it within a bound."""

    def __init__(self, *args, **kwargs):
        self.signalled: int | None = None
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
        while not run_once and self.signalled is None and self.sentinel.is_alive():
            time.sleep(0.2)
        self.stop_within(float(os.environ.get("Q_STOP_TIMEOUT", "6")))

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


class Command(qcluster.Command):
    def handle(self, *args, **options):
        # As django-q2's command: the SECRET_KEY signs task payloads; the name picks the cluster.
        settings.SECRET_KEY  # noqa: B018
        if options.get("cluster_name"):
            os.environ["Q_CLUSTER_NAME"] = options["cluster_name"]
        if os.environ.get("Q_CLUSTER_NAME") == "asr" and settings.ASR_NICE > 0:
            os.nice(settings.ASR_NICE)  # inherited by the sentinel and every worker (see settings.ASR_NICE)
        BoundedStopCluster().run(run_once=options.get("run_once", False))
