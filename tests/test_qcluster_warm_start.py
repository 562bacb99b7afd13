"""The warm-start gate of `manage.py qcluster` in one process: the pusher reads the broker only once the pool
is warm, and the first failed warm-up is what the command reports."""

from __future__ import annotations

import threading
import time

from portal.management.commands.qcluster import WarmStart, _gated_pusher


def test_the_gated_pusher_waits_for_the_pool_then_pushes():
    calls = []
    ready, stop = threading.Event(), threading.Event()
    gated = _gated_pusher(lambda task_queue, event, broker=None: calls.append((task_queue, broker)), ready)
    worker = threading.Thread(target=gated, args=("queue", stop, "broker"))
    worker.start()
    time.sleep(0.5)
    assert calls == []  # nothing pulled from the broker while the workers warm up
    ready.set()
    worker.join(timeout=5)
    assert calls == [("queue", "broker")]


def test_the_gated_pusher_stops_before_the_pool_is_warm():
    stop = threading.Event()
    gated = _gated_pusher(lambda *args: (_ for _ in ()).throw(AssertionError("pushed")), threading.Event())
    stop.set()
    assert gated("queue", stop) is None


def test_reports_set_ready_once_every_worker_is_warm_and_a_failure_is_returned():
    warm = WarmStart("transcription.engines.engine_warm_up", workers=2)
    warm.reports.put(("ok", 11, "model m on cpu in 1.0 s"))
    time.sleep(0.2)  # the queue's feeder thread
    assert warm.failure() is None and not warm.ready.is_set()
    warm.reports.put(("ok", 12, "model m on cpu in 1.1 s"))
    warm.reports.put(("failed", 13, "ASR model 'm' could not be loaded on cpu: boom. Set ASR_MODEL to ..."))
    time.sleep(0.2)
    assert warm.failure() == "ASR model 'm' could not be loaded on cpu: boom. Set ASR_MODEL to ..."
    assert warm.ready.is_set() and warm.warm == 2
