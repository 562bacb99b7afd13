"""Django's own middlewares, running their hooks in the event loop under ASGI where the hook does no I/O.

Django's MiddlewareMixin, in async mode, runs every process_request/process_view/process_response in a
thread of the request (sync_to_async): about twenty thread hops per request with MIDDLEWARE's list, which
cost the web tier more CPU than the API's own work (issue 13). Most of these hooks only read headers and
cookies or set response headers, so each class here runs them directly in the event loop, and keeps the
thread only for the cases that may touch the database or parse a body: a session to save, messages to
store, a CSRF check that reads a form. In sync mode (WSGI, the test client) they are the original classes.
A hook that did reach the database in the event loop would raise SynchronousOnlyOperation, never block.
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.middleware import AuthenticationMiddleware as _Authentication
from django.contrib.messages.middleware import MessageMiddleware as _Message
from django.contrib.sessions.middleware import SessionMiddleware as _Session
from django.middleware.clickjacking import XFrameOptionsMiddleware as _XFrameOptions
from django.middleware.common import CommonMiddleware as _Common
from django.middleware.csrf import CsrfViewMiddleware as _CsrfView
from django.middleware.locale import LocaleMiddleware as _Locale
from django.middleware.security import SecurityMiddleware as _Security

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


class _Inline:
    """Async mode: process_request and process_response run in the event loop, unless the `*_needs_thread`
    check says this request's hook may do I/O (then in a thread, as Django does)."""

    def request_needs_thread(self, request) -> bool:
        return False

    def response_needs_thread(self, request, response) -> bool:
        return False

    async def __acall__(self, request):
        response = None
        if hasattr(self, "process_request"):
            if self.request_needs_thread(request):
                response = await sync_to_async(self.process_request)(request)
            else:
                response = self.process_request(request)
        response = response or await self.get_response(request)
        if hasattr(self, "process_response"):
            if self.response_needs_thread(request, response):
                response = await sync_to_async(self.process_response)(request, response)
            else:
                response = self.process_response(request, response)
        return response


class SecurityMiddleware(_Inline, _Security):
    """Headers and the HTTPS redirect: no I/O."""


class LocaleMiddleware(_Inline, _Locale):
    """The language from the URL, cookie or Accept-Language; the 404 check resolves URLs in memory."""


class CommonMiddleware(_Inline, _Common):
    """User agents, the slash redirect (URL resolution in memory) and Content-Length."""


class AuthenticationMiddleware(_Inline, _Authentication):
    """`request.user` is lazy: it is loaded where it is first read (the view's thread)."""


class XFrameOptionsMiddleware(_Inline, _XFrameOptions):
    """One response header."""


class SessionMiddleware(_Inline, _Session):
    """The session store is lazy; the response hook writes only a modified session (then in a thread)."""

    def response_needs_thread(self, request, response) -> bool:
        session = getattr(request, "session", None)
        return session is not None and (session.modified or settings.SESSION_SAVE_EVERY_REQUEST)


class MessageMiddleware(_Inline, _Message):
    """Messages are stored (cookie, then session) only when some were read or added: then in a thread."""

    def response_needs_thread(self, request, response) -> bool:
        storage = getattr(request, "_messages", None)
        return storage is not None and (storage.used or storage.added_new)


class CsrfViewMiddleware(_Inline, _CsrfView):
    """The secret comes from a cookie; the view check reads a form body only for an unsafe method on a view
    that is not exempt (DRF's API views are), and only that case goes to a thread."""

    def __init__(self, get_response):
        super().__init__(get_response)
        if self.async_mode:
            # An instance attribute: Django's handler sees a coroutine function and awaits it in the loop.
            self.process_view = self._aprocess_view

    def request_needs_thread(self, request) -> bool:
        return settings.CSRF_USE_SESSIONS

    def response_needs_thread(self, request, response) -> bool:
        return settings.CSRF_USE_SESSIONS

    async def _aprocess_view(self, request, callback, callback_args, callback_kwargs):
        hook = _CsrfView.process_view
        if getattr(callback, "csrf_exempt", False) or request.method in _SAFE_METHODS:
            return hook(self, request, callback, callback_args, callback_kwargs)
        return await sync_to_async(hook)(self, request, callback, callback_args, callback_kwargs)
