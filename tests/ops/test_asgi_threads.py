"""portal.asgi_threads: each request's sync code runs on a thread of its own, taken from a pool (issue 13)."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from asgiref.sync import SyncToAsync
from django.core import signals
from django.http import JsonResponse, StreamingHttpResponse
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


async def awaits(request):
    await asyncio.sleep(0)
    return JsonResponse({"async": True})


def streams(request):
    return StreamingHttpResponse(iter([b"one ", b"two"]), content_type="text/plain")


def fails(request):
    raise RuntimeError("boom")


urlpatterns = [path("whoami", whoami), path("awaits", awaits), path("streams", streams), path("api/v1/fails", fails)]


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


@pytest.fixture
def events(monkeypatch):
    """What happens in a request, in order: thread hops (by function), the request signals, the response start."""
    seen: list[str] = []
    original = SyncToAsync.__call__

    async def counting(self, *args, **kwargs):
        seen.append("hop " + getattr(self.func, "__name__", repr(self.func)))
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "__call__", counting)

    def started(**kwargs):
        seen.append("request_started")

    def finished(**kwargs):
        seen.append("request_finished")

    signals.request_started.connect(started)
    signals.request_finished.connect(finished)
    yield seen
    signals.request_started.disconnect(started)
    signals.request_finished.disconnect(finished)


def _serve(app, path: str):
    async def main():
        return await asgi_get(app, path)

    return asyncio.run(main())


@pytest.mark.urls(__name__)
@pytest.mark.django_db
def test_a_sync_view_is_served_in_one_hop_and_its_request_ends_before_the_answer_goes_out(events):
    status, headers, body = _serve(PooledThreadsASGIHandler(), "/whoami")
    assert status == 200 and json.loads(body)["thread"] >= 0
    # Django's ASGI path: a hop for request_started, one for the view, one for response.close().
    assert events == ["hop _serve", "request_started", "request_finished"], events
    assert headers["x-request-id"] and headers["content-length"] == str(len(body))


@pytest.mark.urls(__name__)
@pytest.mark.django_db
def test_an_async_view_keeps_djangos_asgi_path(events):
    status, _headers, body = _serve(PooledThreadsASGIHandler(), "/awaits")
    assert status == 200 and json.loads(body) == {"async": True}
    assert events[0] != "hop _serve" and events.count("request_started") == 1 and events[-1] == "request_finished"


@pytest.mark.urls(__name__)
@pytest.mark.django_db
def test_a_streamed_response_is_closed_after_its_last_chunk(events):
    app = PooledThreadsASGIHandler()
    sent: list[str] = []

    async def main():
        scope_path = "/streams"
        done = asyncio.Event()

        async def receive():
            if not sent:
                sent.append("body read")
                return {"type": "http.request", "body": b"", "more_body": False}
            await done.wait()

        async def send(message):
            sent.append(message["type"] + ":" + message.get("body", b"").decode())
            if message["type"] == "http.response.body" and not message.get("more_body"):
                events.append("last chunk sent")

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
                 "scheme": "http", "path": scope_path, "raw_path": scope_path.encode(), "query_string": b"",
                 "root_path": "", "headers": [(b"host", b"testserver")], "client": ("127.0.0.1", 1),
                 "server": ("testserver", 80)}  # fmt: skip
        await app(scope, receive, send)

    asyncio.run(main())
    assert "".join(m.split(":", 1)[1] for m in sent[1:]) == "one two"
    assert events.index("last chunk sent") < events.index("request_finished")


@pytest.mark.urls(__name__)
@pytest.mark.django_db
def test_a_failing_view_on_an_api_path_answers_the_documented_error(events):
    status, headers, body = _serve(PooledThreadsASGIHandler(), "/api/v1/fails")
    assert status == 500 and headers["content-type"] == "application/json"
    assert json.loads(body)["error"]["code"] == "internal_error"
    assert events.count("request_finished") == 1


@pytest.mark.django_db
def test_an_unknown_path_is_a_404_in_one_hop(events):
    status, headers, body = _serve(PooledThreadsASGIHandler(), "/api/v1/nowhere")  # the project's URLs
    assert status == 404 and headers["content-type"] == "application/json"
    assert json.loads(body)["error"]["code"] == "not_found"
    assert events[0] == "hop _serve" and events.count("request_finished") == 1


def test_the_long_poll_views_take_djangos_asgi_path_and_the_submit_one_hop():
    from portal.asgi_threads import _view_is_async

    job = "/api/v1/transcriptions/00000000-0000-0000-0000-000000000001"
    assert _view_is_async({"path": job}) and _view_is_async({"path": "/v1/audio/transcriptions"})
    assert not _view_is_async({"path": "/api/v1/transcriptions"}) and not _view_is_async({"path": "/healthz"})
    assert _view_is_async({"path": "/base" + job, "root_path": "/base"})
    assert not _view_is_async({"path": "/no/such/page"})


@pytest.mark.django_db
def test_browser_pages_go_through_the_full_middleware_in_their_one_hop(events):
    app = PooledThreadsASGIHandler()  # portal.asgi's handler for everything that is not an API path
    status, headers, _body = _serve(app, "/app/")
    assert status == 302 and "/accounts/login/" in headers["location"]  # anonymous: AuthenticationMiddleware
    status, headers, body = _serve(app, "/accounts/login/")
    assert status == 200 and b"csrfmiddlewaretoken" in body
    assert "csrftoken=" in headers["set-cookie"] and headers["x-frame-options"] == "DENY"
    assert events.count("hop _serve") == 2 and events.count("request_finished") == 2
