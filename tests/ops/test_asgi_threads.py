"""portal.asgi_threads: each request's sync code runs on a thread of its own, taken from a pool (issue 13)."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from django.http import JsonResponse
from django.urls import path

from portal.asgi_threads import PooledThreadsASGIHandler, ThreadPool
from tests.asgi_client import asgi_get

_gate = threading.Event()
_seen: list[threading.Thread] = []  # the threads themselves, kept alive: an ended thread's ident can come back


def whoami(request):
    if request.GET.get("hold"):
        assert _gate.wait(10), "the gate was never opened"
    _seen.append(threading.current_thread())
    return JsonResponse({"thread": len(_seen) - 1})


urlpatterns = [path("whoami", whoami)]


async def call(app, query: str = "") -> dict:
    """One GET of /whoami through the ASGI handler; the JSON body."""
    status, _headers, body = await asgi_get(app, "/whoami", query=query)
    assert status == 200, body
    return json.loads(body)


@pytest.mark.urls(__name__)
@pytest.mark.django_db
def test_one_request_after_another_reuses_one_thread():
    app = PooledThreadsASGIHandler()

    async def main():
        return [(await call(app))["thread"] for _ in range(5)]

    threads = [_seen[i] for i in asyncio.run(main())]
    assert all(t is threads[0] for t in threads), threads
    assert threads[0] is not threading.current_thread()  # never the event loop's thread


@pytest.mark.urls(__name__)
@pytest.mark.django_db
def test_requests_at_the_same_time_each_have_their_own_thread():
    app = PooledThreadsASGIHandler()
    _gate.clear()

    async def main():
        held = [asyncio.create_task(call(app, "hold=1")) for _ in range(3)]
        await asyncio.sleep(0.3)  # all three are inside the view, waiting at the gate
        free = await call(app)  # a fourth is not stuck behind them
        _gate.set()
        return [(await task)["thread"] for task in held], free["thread"]

    held, free = asyncio.run(main())
    threads = [_seen[i] for i in (*held, free)]
    assert len({id(t) for t in threads}) == 4, threads


def test_a_busy_executor_is_not_lent_again_and_idle_ones_are_capped():
    pool = ThreadPool(idle_max=1)
    first, second = pool.take(), pool.take()
    assert first is not second
    release = threading.Event()
    running = first.submit(release.wait, 10)
    pool.give(first)  # still running: ended, not kept
    pool.give(second)
    assert pool.take() is second
    third = pool.take()
    assert third is not first
    release.set()
    assert running.result(timeout=10) is True
    pool.give(third)
    pool.give(pool.take())
    assert len(pool._idle) == 1
