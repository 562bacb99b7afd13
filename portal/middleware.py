"""Async-capable versions of the two synchronous middlewares in MIDDLEWARE.

Under ASGI, one sync-only middleware turns the whole chain synchronous: every request then runs in a
thread that stays blocked while an async view (a long-poll) awaits. With every middleware able to run
in async mode, a waiting request holds no thread. Both classes behave exactly like the originals.
"""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from whitenoise.middleware import WhiteNoiseMiddleware as SyncWhiteNoiseMiddleware

from dashboard.middleware import UserTimezoneMiddleware as SyncUserTimezoneMiddleware


class WhiteNoiseMiddleware(SyncWhiteNoiseMiddleware):
    """WhiteNoise's static files, also in async mode (WhiteNoise itself is sync-only)."""

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

    async def __acall__(self, request):
        if self.autorefresh:  # DEBUG: looks at the disk
            static_file = await sync_to_async(self.find_file)(request.path_info)
        else:
            static_file = self.files.get(request.path_info)
        if static_file is not None:
            return await sync_to_async(self.serve)(static_file, request)
        return await self.get_response(request)


class UserTimezoneMiddleware(SyncUserTimezoneMiddleware):
    """The dashboard's time-zone middleware, also in async mode.

    The dashboard's own code runs in a thread (reading the session may query the database); the time
    zone it activates comes back with the context (asgiref copies context variables back). Its
    `get_response(request)` call returns the next handler's coroutine, awaited here in the event loop.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        super().__init__(get_response)
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.async_mode:
            return self.__acall__(request)
        return super().__call__(request)

    async def __acall__(self, request):
        coroutine = await sync_to_async(super().__call__)(request)
        return await coroutine
