"""Requests being served before long-poll answers, in one web process (issue 13).

When a batch of jobs finishes, the long-polls that wait for those jobs are all ready at once. Built side by
side, their answers took the process (one GIL) from the requests already being served: a submit that came
in meanwhile waited for the whole burst. Here a waited long-poll's answer is built one at a time, and only
while no other request is being served, or once it has waited `ANSWER_DEFER_S` since it was ready: a steady
stream of requests delays an answer by about that much and cannot starve the waiting clients.

A request is "being served" from the end of its body (a slow upload is no work for this process) until its
response starts (a streamed response, an SSE stream say, is not held against anyone for its whole length).
A long-poll stops being served when it starts waiting (step_back()). All of it is per event loop (uvicorn
runs one per process; async_to_sync makes one per call, where nothing else is served).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import weakref
from collections.abc import AsyncIterator

ANSWER_DEFER_S = 0.03  # the most an answer waits for the requests being served


class _Loop:
    """One event loop's count of requests being served, and its answers' turn."""

    def __init__(self):
        self.serving = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self.answering = asyncio.Lock()


class _Request:
    __slots__ = ("loop", "counted", "over")

    def __init__(self, loop: _Loop):
        self.loop, self.counted, self.over = loop, False, False

    def start(self) -> None:
        if not (self.counted or self.over):
            self.counted = True
            self.loop.serving += 1
            self.loop.idle.clear()

    def stop(self) -> None:
        self.over = True
        if self.counted:
            self.counted = False
            self.loop.serving -= 1
            if not self.loop.serving:
                self.loop.idle.set()


_loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Loop] = weakref.WeakKeyDictionary()
_current: contextvars.ContextVar[_Request | None] = contextvars.ContextVar("tingxie_lanes_request", default=None)


def _state() -> _Loop:
    loop = asyncio.get_running_loop()
    state = _loops.get(loop)
    if state is None:
        state = _loops[loop] = _Loop()
    return state


@contextlib.asynccontextmanager
async def serving(receive, send) -> AsyncIterator[tuple]:
    """Around one ASGI HTTP request: (receive, send) to hand on, which count it as being served from the end
    of its body until its response starts (or the request ends)."""
    request = _Request(_state())

    async def counted_receive():
        message = await receive()
        if message["type"] == "http.request" and not message.get("more_body", False):
            request.start()
        return message

    async def counted_send(message):
        if message["type"] == "http.response.start":
            request.stop()
        await send(message)

    token = _current.set(request)
    try:
        yield counted_receive, counted_send
    finally:
        _current.reset(token)
        request.stop()


def step_back() -> None:
    """The current request starts waiting (a long-poll): it is no longer being served."""
    request = _current.get()
    if request is not None:
        request.stop()


@contextlib.asynccontextmanager
async def answer_turn() -> AsyncIterator[None]:
    """Around building a waited long-poll's answer, entered as soon as it is ready: one at a time, after the
    requests being served, or once ANSWER_DEFER_S have passed since it was ready (counted from entry, not
    from its turn: under steady load a burst of answers goes out back to back after that, instead of one per
    ANSWER_DEFER_S)."""
    state = _state()
    loop = asyncio.get_running_loop()
    due = loop.time() + ANSWER_DEFER_S
    async with state.answering:
        left = due - loop.time()
        if state.serving and left > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.idle.wait(), left)
        yield
