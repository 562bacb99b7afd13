"""Django's ASGI handler with each request's sync thread taken from a pool instead of started and joined anew.

Django runs every request inside its own asgiref ThreadSensitiveContext, so that the request's sync parts (signals,
sync middleware, the view, response.close) share one thread of their own. asgiref makes that thread for the
request and joins it at the end: a thread start and join per request, a few hundred microseconds of CPU on the
web tier's hottest path (issue 13). Here each request still gets a thread of its own for its whole life, but
the single-thread executors are kept and lent again; one that is still busy when its request ends (a cancelled
request whose sync code runs on) is not lent again but shut down once it finishes.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext, iscoroutinefunction, sync_to_async
from django.conf import settings
from django.core import signals
from django.core.handlers.asgi import ASGIHandler, RequestAborted, get_script_prefix
from django.core.handlers.base import BaseHandler
from django.http import FileResponse
from django.urls import Resolver404, get_resolver, set_script_prefix

from portal import lanes

IDLE_MAX = 64  # idle threads kept; more are ended when their request ends


class _OneThread(ThreadPoolExecutor):
    """A single-thread executor that knows whether it has work in flight."""

    def __init__(self):
        super().__init__(max_workers=1, thread_name_prefix="request")
        self.in_flight = 0
        self._count_lock = threading.Lock()

    def submit(self, fn, /, *args, **kwargs):
        with self._count_lock:
            self.in_flight += 1
        future = super().submit(fn, *args, **kwargs)
        future.add_done_callback(self._done)
        return future

    def _done(self, _future) -> None:
        with self._count_lock:
            self.in_flight -= 1


class ThreadPool:
    def __init__(self, idle_max: int = IDLE_MAX):
        self.idle_max = idle_max
        self._idle: list[_OneThread] = []
        self._lock = threading.Lock()

    def take(self) -> _OneThread:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return _OneThread()

    def give(self, executor: _OneThread) -> None:
        with self._lock:
            if executor.in_flight == 0 and len(self._idle) < self.idle_max:
                self._idle.append(executor)
                return
        executor.shutdown(wait=False)


class PooledThreadsASGIHandler(ASGIHandler):
    """ASGIHandler whose per-request thread comes from a ThreadPool (same isolation: one thread per request).
    Its requests are counted as being served (portal.lanes: waited long-polls' answers give them way).

    A request for a synchronous view is served in one hop to its thread and back: the request signal, the
    middleware (their synchronous form, as under WSGI), the view and, for a response that is not streamed,
    its close (the end-of-request signal: database connections go back to the pool before the bytes go out).
    Django's ASGI path takes three (the start signal, the view, the close), each a wake-up of the thread and
    then of the event loop, which wait for a CPU on a busy host (issue 13). Asynchronous views (long-polls)
    take Django's ASGI path.

    `middleware`: this handler's chain, instead of settings.MIDDLEWARE (api_middleware() for the API paths)."""

    def __init__(self, middleware: list[str] | None = None):
        self.middleware = middleware
        super().__init__()
        self.threads = ThreadPool()
        self.sync_chain = _SyncChain(middleware)

    def load_middleware(self, is_async=False):
        return _with_middleware(
            self.middleware, lambda: super(PooledThreadsASGIHandler, self).load_middleware(is_async)
        )

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await super().__call__(scope, receive, send)  # Django's own error for other scopes
        executor = self.threads.take()
        try:
            async with lanes.serving(receive, send) as (receive, send), ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
        finally:
            self.threads.give(executor)

    async def handle(self, scope, receive, send):
        if _view_is_async(scope):
            return await super().handle(scope, receive, send)
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        try:
            response = await sync_to_async(self._serve)(scope, body_file)
            try:
                await self.send_response(response, send)
            except asyncio.CancelledError:
                pass  # the client went away while the response was sent
            if response.streaming:
                await sync_to_async(response.close)()
        finally:
            body_file.close()

    def _serve(self, scope, body_file):
        """In the request's thread: what Django's ASGI handler does around a view, and the view."""
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, response = self.create_request(scope, body_file)
        if request is not None:
            response = self.sync_chain.get_response(request)
            response._handler_class = self.__class__
            if isinstance(response, FileResponse):
                response.block_size = self.chunk_size
        if not response.streaming:
            response.close()  # request_finished; the content is already in memory
        return response


class _SyncChain(BaseHandler):
    """The synchronous middleware chain and view call of a PooledThreadsASGIHandler (as WSGIHandler has)."""

    def __init__(self, middleware: list[str] | None):
        super().__init__()
        _with_middleware(middleware, lambda: self.load_middleware(is_async=False))


def _with_middleware(middleware: list[str] | None, load):
    """Call `load` (a handler's load_middleware) with settings.MIDDLEWARE as `middleware` for the call (at
    start-up, in portal.asgi, before any request), then as it was."""
    if middleware is None:
        return load()
    full = settings.MIDDLEWARE
    settings.MIDDLEWARE = list(middleware)
    try:
        return load()
    finally:
        settings.MIDDLEWARE = full


def _path_below_root(scope) -> str:
    """The request's path without the root path the application is mounted at."""
    path, root = scope.get("path", ""), scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def _view_is_async(scope) -> bool:
    """Whether the view this request's path resolves to is a coroutine function (a 404 is not)."""
    try:
        match = get_resolver().resolve(_path_below_root(scope))
    except Resolver404:
        return False
    return iscoroutinefunction(match.func)


# API paths (API keys, JSON) skip the middleware that serves browser pages (sessions, CSRF, login, messages,
# allauth, the user's timezone, static files): they do nothing for an API request and cost ~0.3 ms of CPU (issue 13).
API_PATH_PREFIXES = ("/api/v1/", "/v1/")
BROWSER_ONLY = ("Session", "Csrf", "AuthenticationMiddleware", "Message", "allauth.", "Timezone", "WhiteNoise")


def api_middleware(middleware: list[str]) -> list[str]:
    """settings.MIDDLEWARE without the browser-only ones, in the same order."""
    return [path for path in middleware if not any(part in path for part in BROWSER_ONLY)]


class PathRouter:
    """HTTP requests whose path (below the root path) starts with one of `prefixes` go to `api`, the rest to
    `default` (portal.asgi: the API paths skip the browser's middleware)."""

    def __init__(self, api, default, prefixes: tuple[str, ...]):
        self.api, self.default, self.prefixes = api, default, tuple(prefixes)

    async def __call__(self, scope, receive, send):
        app = self.default
        if scope["type"] == "http":
            path = _path_below_root(scope)
            if path.startswith(self.prefixes):
                app = self.api
        return await app(scope, receive, send)
