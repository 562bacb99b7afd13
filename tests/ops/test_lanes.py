"""portal.lanes: a waited long-poll's answer is built one at a time, after the requests being served, or once it
has waited ANSWER_DEFER_S (issue 13: a batch's burst of answers made new submits wait for all of them)."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
from django.http import JsonResponse
from django.urls import path
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from portal import lanes
from portal.asgi_threads import PooledThreadsASGIHandler
from portal.longpoll import AwaitResponse, LongPollApiMixin
from tests.asgi_client import asgi_get

_gate = threading.Event()
_ready: dict[str, asyncio.Future] = {}  # the long-polls' awaitables, by name (set by the tests)
_built: list[tuple[str, float]] = []  # (what, time.monotonic()) as answers and held requests end


def held(request):
    """A request being served until the test opens the gate."""
    assert _gate.wait(10), "the gate was never opened"
    _built.append(("held", time.monotonic()))
    return JsonResponse({"held": True})


class Poll(LongPollApiMixin, APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    def get(self, request, name):
        return AwaitResponse(_ready[name], then=lambda result: self._answer(name, result))

    @staticmethod
    def _answer(name: str, result) -> Response:
        _built.append((name, time.monotonic()))
        return Response({"name": name, "result": result})


class Ready(LongPollApiMixin, APIView):
    """An AwaitResponse whose value is ready: nothing is waited for, so nothing gives way."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    def get(self, request):
        return AwaitResponse("now", then=lambda result: Response({"result": result}))


urlpatterns = [path("held", held), path("poll/<str:name>", Poll.as_view()), path("ready", Ready.as_view())]


@pytest.fixture
def clean():
    _gate.clear()
    _ready.clear()
    _built.clear()
    yield
    _gate.set()


async def _get(app, url: str) -> dict:
    status, _headers, body = await asgi_get(app, url)
    assert status == 200, body
    return json.loads(body)


def _serving(loop) -> int:
    state = lanes._loops.get(loop)
    return state.serving if state is not None else 0


def _polls(app, *names: str) -> list[asyncio.Task]:
    """Long-polls, each waiting for its own future in _ready."""
    loop = asyncio.get_running_loop()
    for name in names:
        _ready[name] = loop.create_future()
    return [asyncio.create_task(_get(app, f"/poll/{name}")) for name in names]


async def _hold(app) -> asyncio.Task:
    """A request being served until _gate opens (returned once it is)."""
    loop = asyncio.get_running_loop()
    before = _serving(loop)
    hold = asyncio.create_task(_get(app, "/held"))
    await _until(lambda: _serving(loop) == before + 1)
    return hold


async def _release(hold: asyncio.Task) -> None:
    """Let the held request (still being served) end."""
    assert not hold.done()
    _gate.set()
    await hold


async def _until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


@pytest.mark.urls(__name__)
def test_an_answer_waits_for_the_request_being_served(clean, monkeypatch):
    monkeypatch.setattr(lanes, "ANSWER_DEFER_S", 10.0)
    app = PooledThreadsASGIHandler()

    async def main():
        loop = asyncio.get_running_loop()
        [poll] = _polls(app, "a")
        await asyncio.sleep(0.2)  # waiting: it is not being served
        hold = await _hold(app)
        _ready["a"].set_result(7)  # the job is done while another request is being served
        await asyncio.sleep(0.3)
        assert not poll.done() and _built == []
        _gate.set()
        await hold
        answer = await asyncio.wait_for(poll, 5)
        return answer, _serving(loop)

    answer, serving = asyncio.run(main())
    assert answer == {"name": "a", "result": 7}
    assert [what for what, _at in _built] == ["held", "a"]
    assert serving == 0


@pytest.mark.urls(__name__)
def test_an_answer_waits_at_most_answer_defer_s(clean, monkeypatch):
    monkeypatch.setattr(lanes, "ANSWER_DEFER_S", 0.3)
    app = PooledThreadsASGIHandler()

    async def main():
        [poll] = _polls(app, "a")
        await asyncio.sleep(0.2)
        hold = await _hold(app)
        started = time.monotonic()
        _ready["a"].set_result(1)
        answer = await asyncio.wait_for(poll, 5)  # while the other request is still held
        waited = time.monotonic() - started
        await _release(hold)
        return answer, waited

    answer, waited = asyncio.run(main())
    assert answer["result"] == 1
    assert 0.25 <= waited < 3, waited
    assert [what for what, _at in _built] == ["a", "held"]


@pytest.mark.urls(__name__)
def test_answers_are_built_one_at_a_time_and_all_get_through(clean, monkeypatch):
    app = PooledThreadsASGIHandler()
    inside: list[int] = []
    running = [0]
    original = Poll._answer

    def answer(name, result):
        running[0] += 1
        inside.append(running[0])
        time.sleep(0.02)  # long enough for a second answer to overlap, were two allowed in at once
        running[0] -= 1
        return original(name, result)

    monkeypatch.setattr(Poll, "_answer", staticmethod(answer))

    async def main():
        names = [f"p{i}" for i in range(6)]
        polls = _polls(app, *names)
        await asyncio.sleep(0.3)
        for name in names:  # a batch finishes: all at once
            _ready[name].set_result(name)
        return await asyncio.wait_for(asyncio.gather(*polls), 10)

    answers = asyncio.run(main())
    assert [a["result"] for a in answers] == [f"p{i}" for i in range(6)]
    assert inside == [1] * 6


@pytest.mark.urls(__name__)
def test_under_steady_load_a_burst_of_answers_waits_answer_defer_s_once_not_once_each(clean, monkeypatch):
    monkeypatch.setattr(lanes, "ANSWER_DEFER_S", 0.5)
    app = PooledThreadsASGIHandler()

    async def main():
        names = [f"p{i}" for i in range(6)]
        polls = _polls(app, *names)
        await asyncio.sleep(0.2)
        hold = await _hold(app)  # being served all along
        started = time.monotonic()
        for name in names:
            _ready[name].set_result(name)
        answers = await asyncio.wait_for(asyncio.gather(*polls), 10)
        took = time.monotonic() - started
        await _release(hold)
        return answers, took

    answers, took = asyncio.run(main())
    assert sorted(a["result"] for a in answers) == [f"p{i}" for i in range(6)]
    assert 0.45 <= took < 1.5, took  # 6 x 0.5 s, were each answer to wait its own ANSWER_DEFER_S in turn


@pytest.mark.urls(__name__)
def test_a_ready_answer_and_a_plain_request_do_not_wait(clean, monkeypatch):
    monkeypatch.setattr(lanes, "ANSWER_DEFER_S", 10.0)
    app = PooledThreadsASGIHandler()

    async def main():
        hold = await _hold(app)
        started = time.monotonic()
        ready = await asyncio.wait_for(_get(app, "/ready"), 5)
        took = time.monotonic() - started
        _gate.set()
        await hold
        return ready, took

    ready, took = asyncio.run(main())
    assert ready == {"result": "now"}
    assert took < 5


def test_a_request_counts_from_the_end_of_its_body_until_its_response_starts():
    async def main():
        body = [{"type": "http.request", "body": b"a", "more_body": True},
                {"type": "http.request", "body": b"b", "more_body": False}]  # fmt: skip
        seen: list[int] = []

        async def receive():
            return body.pop(0)

        async def send(message):
            pass

        state = lanes._state()
        async with lanes.serving(receive, send) as (counted_receive, counted_send):
            seen.append(state.serving)  # nothing received yet
            await counted_receive()
            seen.append(state.serving)  # more body to come: an upload is no work
            await counted_receive()
            seen.append(state.serving)  # the body is in: being served
            await counted_send({"type": "http.response.start", "status": 200, "headers": []})
            seen.append(state.serving)  # the response started (a stream may go on for long)
            await counted_send({"type": "http.response.body", "body": b"x"})
            seen.append(state.serving)
        seen.append(state.serving)
        async with lanes.serving(receive, send) as (counted_receive, _send):
            body.append({"type": "http.request", "body": b"", "more_body": False})
            await counted_receive()
            seen.append(state.serving)
            lanes.step_back()  # a long-poll starts waiting
            seen.append(state.serving)
            lanes.step_back()  # twice is once
            seen.append(state.serving)
        seen.append(state.serving)  # ending after step_back() does not count it down again
        return seen

    assert asyncio.run(main()) == [0, 0, 1, 0, 0, 0, 1, 0, 0, 0]


def test_a_request_that_fails_or_is_cancelled_stops_counting():
    async def main():
        state = lanes._state()

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            pass

        with pytest.raises(RuntimeError):
            async with lanes.serving(receive, send) as (counted_receive, _send):
                await counted_receive()
                raise RuntimeError("the view failed")
        after_failure = state.serving

        async def served_forever():
            async with lanes.serving(receive, send) as (counted_receive, _send):
                await counted_receive()
                await asyncio.Event().wait()

        task = asyncio.create_task(served_forever())
        await _until(lambda: state.serving == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return after_failure, state.serving, state.idle.is_set()

    assert asyncio.run(main()) == (0, 0, True)
