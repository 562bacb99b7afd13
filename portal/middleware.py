"""Our middlewares, each able to run in sync and async mode: request ids and API errors, and async-capable
versions of the two synchronous middlewares in MIDDLEWARE.

Under ASGI, one sync-only middleware turns the whole chain synchronous: every request then runs in a
thread that stays blocked while an async view (a long-poll) awaits. With every middleware able to run
in async mode, a waiting request holds no thread. The two wrapped classes behave exactly like the originals.
"""

from __future__ import annotations

import logging
import time

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.contrib.sessions.backends.base import SessionBase
from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
from django.http import Http404, JsonResponse
from django.utils import timezone
from whitenoise.middleware import WhiteNoiseMiddleware as SyncWhiteNoiseMiddleware

from dashboard.middleware import UserTimezoneMiddleware as SyncUserTimezoneMiddleware
from portal.errors import DomainError, error_body, is_api_path, log_unhandled, shaped_error, unhandled_error
from portal.logs import tenant_var
from portal.request_id import request_id_from, request_id_var

request_logger = logging.getLogger("portal.request")
# Probes hit these every few seconds: their lines are DEBUG.
_PROBES = frozenset({"/healthz", "/readyz", "/metrics"})

# Exceptions Django itself answers with a 4xx (handler400/403/404): not ours to turn into a 500.
_DJANGO_CLIENT_ERRORS = (Http404, PermissionDenied, BadRequest, SuspiciousOperation)


def _chunked_body_length(request) -> None:
    """A chunked upload (`Transfer-Encoding: chunked`, no Content-Length) under ASGI: Django's ASGI handler has
    already read the whole body into a spooled file, but its parsers trust CONTENT_LENGTH and would see an
    empty body ("No file was submitted"). Give them the length of what actually arrived."""
    if "CONTENT_LENGTH" in request.META or "chunked" not in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
        return
    stream = getattr(request, "_stream", None)
    if stream is None or not hasattr(stream, "seek"):
        return
    position = stream.tell()
    stream.seek(0, 2)
    request.META["CONTENT_LENGTH"] = str(stream.tell() - position)
    stream.seek(position)


class RequestIdMiddleware:
    """First in MIDDLEWARE: a request id for the logs and the `X-Request-ID` response header, and JSON errors
    on API paths for exceptions that a view outside DRF raised (DRF views map theirs in portal.errors).

    The id is the client's (or proxy's) `X-Request-ID` when it is a short safe token, else a fresh one. It
    lives in a context variable, which sync_to_async threads and async tasks of the request inherit.
    Exceptions raised by other middlewares never reach this one (Django answers them with handler500,
    portal.views.server_error, which reads the same id).
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.async_mode:
            return self.__acall__(request)
        request_id, tokens, started = self._begin(request)
        try:
            response = self.get_response(request)
            self._log(request, response, started)
        finally:
            self._end(tokens)
        response["X-Request-ID"] = request_id
        return response

    async def __acall__(self, request):
        request_id, tokens, started = self._begin(request)
        try:
            response = await self.get_response(request)
            self._log(request, response, started)
        finally:
            self._end(tokens)
        response["X-Request-ID"] = request_id
        return response

    @staticmethod
    def _log(request, response, started: float) -> None:
        """One line per request: method, path, status and duration (the tenant and request id come with it)."""
        duration_ms = round((time.perf_counter() - started) * 1000, 1)
        level = logging.DEBUG if request.path in _PROBES else logging.INFO
        request_logger.log(
            level,
            "%s %s %s %.1f ms",
            request.method, request.path, response.status_code, duration_ms,
            extra={"method": request.method, "path": request.path, "status": response.status_code,
                   "duration_ms": duration_ms},
        )  # fmt: skip

    @staticmethod
    def _end(tokens) -> None:
        request_id_var.reset(tokens[0])
        tenant_var.reset(tokens[1])

    @staticmethod
    def _begin(request):
        _chunked_body_length(request)
        request_id = request_id_from(request.headers.get("X-Request-ID"))
        request.request_id = request_id
        return request_id, (request_id_var.set(request_id), tenant_var.set("-")), time.perf_counter()

    def process_exception(self, request, exception):
        """An exception from a (non-DRF) view on an API path: the documented shape, not Django's HTML page."""
        if not is_api_path(request.path) or isinstance(exception, _DJANGO_CLIENT_ERRORS):
            return None
        if isinstance(exception, DomainError):
            return JsonResponse(
                shaped_error(
                    request.path,
                    error_body(exception.code, exception.message, **exception.extra),
                    exception.status_code,
                ),
                status=exception.status_code,
                headers=exception.headers,
            )
        status_code, body, headers = unhandled_error(exception)
        log_unhandled(request, exception, status_code)
        response = JsonResponse(shaped_error(request.path, body, status_code), status=status_code, headers=headers)
        response._has_been_logged = True  # logged above with the traceback
        return response


class _AsyncTwin:
    """Mixin for a sync-only middleware class: runs it unchanged in sync mode, its `__acall__` in async mode."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response=None, *args, **kwargs):
        super().__init__(get_response, *args, **kwargs)
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.async_mode:
            return self.__acall__(request)
        return super().__call__(request)


class WhiteNoiseMiddleware(_AsyncTwin, SyncWhiteNoiseMiddleware):
    """WhiteNoise's static files, also in async mode (WhiteNoise itself is sync-only)."""

    async def __acall__(self, request):
        if self.autorefresh:  # DEBUG: looks at the disk
            static_file = await sync_to_async(self.find_file)(request.path_info)
        else:
            static_file = self.files.get(request.path_info)
        if static_file is not None:
            return await sync_to_async(self.serve)(static_file, request)
        return await self.get_response(request)


class UserTimezoneMiddleware(_AsyncTwin, SyncUserTimezoneMiddleware):
    """The dashboard's time-zone middleware, also in async mode.

    The dashboard's own code runs in a thread (reading the session may query the database); the time
    zone it activates comes back with the context (asgiref copies context variables back). Its
    `get_response(request)` call returns the next handler's coroutine, awaited here in the event loop.
    """

    async def __acall__(self, request):
        session = getattr(request, "session", None)
        if session is None or (
            isinstance(session, SessionBase) and session.session_key is None and not hasattr(session, "_session_cache")
        ):
            # No session (API clients send no cookie), so no stored time zone: what the dashboard's code would
            # do, without a thread (reading a session with a key may query the database).
            timezone.deactivate()
            return await self.get_response(request)
        coroutine = await sync_to_async(SyncUserTimezoneMiddleware.__call__)(self, request)
        return await coroutine
