"""Long-polls: DRF views that may end by waiting, awaited in the event loop, and a shared row watcher.

A handler of a `LongPollApiMixin` view runs as usual (authentication, throttling, tenant, validation,
all synchronous, in a thread) and may return `AwaitResponse(awaitable, then=...)`. The view is served
as an async Django view: the awaitable is awaited in the event loop, then `then(result)` builds the
response in a thread, and exceptions from either go through DRF's exception handling exactly as if the
handler had raised them; a waited answer is built when portal.lanes gives it its turn. Under WSGI (the
test client, pytest-django's live_server) Django runs the same async view through async_to_sync: the same
answers, but there the request's thread does wait.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import sync_to_async
from django.db import connections, router
from django.db.models import Model
from rest_framework.response import Response

from portal import lanes
from portal.model_rows import ModelColumns
from portal.pg_listen import Listener

logger = logging.getLogger(__name__)


class AwaitResponse(Response):
    """Returned by a handler to answer with `then(await awaitable)` (a ready value is not awaited)."""

    def __init__(self, awaitable: Awaitable[Any] | Any, *, then: Callable[[Any], Response]):
        super().__init__()
        self.awaitable = awaitable
        self.then = then


class LongPollApiMixin:
    """Mix into an APIView whose handlers may return AwaitResponse (put it before the APIView base)."""

    @classmethod
    def as_view(cls, **initkwargs):
        sync_view = super().as_view(**initkwargs)

        def handle(request, *args, **kwargs):
            response = sync_view(request, *args, **kwargs)
            if isinstance(response, AwaitResponse):
                # Before the wait, in the request's own thread (no hop of its own): give the connection back.
                _release_connections()
            return response

        async def view(request, *args, **kwargs):
            response = await sync_to_async(handle)(request, *args, **kwargs)
            if not isinstance(response, AwaitResponse):
                return response
            api = response.renderer_context["view"]
            awaitable = response.awaitable
            if not inspect.isawaitable(awaitable):
                return await sync_to_async(api.finish_long_poll)(then=response.then, result=awaitable)
            lanes.step_back()  # waiting: this request no longer holds answers back
            try:
                finish = {"then": response.then, "result": await awaitable}
            except Exception as exc:  # noqa: BLE001 - handed to DRF's exception handling below
                finish = {"exc": exc}
            async with lanes.answer_turn():  # one at a time, after the requests being served (portal.lanes)
                return await sync_to_async(api.finish_long_poll)(**finish)

        # What DRF's as_view() sets (drf-spectacular reads `cls`; CSRF is the authentication's business).
        for attr in ("cls", "initkwargs", "view_class", "view_initkwargs", "csrf_exempt"):
            if hasattr(sync_view, attr):
                setattr(view, attr, getattr(sync_view, attr))
        view.__doc__, view.__module__, view.__name__ = sync_view.__doc__, sync_view.__module__, sync_view.__name__
        return view

    def finish_long_poll(
        self, *, then: Callable[[Any], Response] | None = None, result: Any = None, exc: Exception | None = None
    ) -> Response:
        """The end of DRF's dispatch() for an awaited answer: build it, map errors, finalize."""
        try:
            if exc is not None:
                raise exc
            response = then(result)
        except Exception as error:  # noqa: BLE001 - DRF maps it (or re-raises what it does not handle)
            response = self.handle_exception(error)
        self.response = self.finalize_response(self.request, response, *self.args, **self.kwargs)
        return self.response


class ColumnWatch:
    """Waits, for any number of waiters at once, until a row's `field` takes one of `values`.

    One query per tick (`interval_s`) looks at the waited-for rows, in one dedicated thread with its own
    database connection (closed whenever nobody waits), so a waiting request costs neither a thread, nor
    a query, nor a database connection of its own. One watcher task per event loop (uvicorn runs one;
    async_to_sync makes one per call). A row the watcher cannot see (deleted, or not committed yet)
    keeps its waiters waiting until their timeout.

    With `channel` on PostgreSQL, a database trigger NOTIFYs the row's id when the field reaches `values`
    (transcription migration 0009): the watcher looks as soon as a waited-for row is named, instead of at
    the next tick (issue 13: a tick cost each waiter half of `interval_s` on average), and only at the rows
    that need it: those named since the last look, and new waiters (within `interval_s`), except a waiter
    whose caller read the row after the listener had started listening (`since`) and whose id was not
    named since: its notice is still to come. Every `notified_interval_s` a safety-net tick looks at all
    (a notice is a hint; it can be lost). While not listening, every tick looks at all. The listening
    connection stays open while waiters come and go and is closed after `IDLE_S` without any.
    """

    BATCH = 500  # ids per query (SQLite's limit on query parameters)
    IDLE_S = 2.0

    def __init__(
        self,
        model: type[Model],
        field: str,
        values: Iterable[str],
        *,
        interval_s: float = 0.05,
        channel: str | None = None,
        notified_interval_s: float = 0.5,
    ):
        self.model = model
        self.field = field
        self.values = tuple(values)
        self.interval_s = interval_s
        self.listener = Listener(channel) if channel else None
        self.notified_interval_s = notified_interval_s
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopWatch] = weakref.WeakKeyDictionary()
        self._statements: dict[tuple[str, int], tuple[str, ModelColumns]] = {}

    async def wait(
        self, pk: Any, *, timeout_s: float, release: bool = True, since: float | None = None
    ) -> Model | None:
        """The row, as the watcher read it, once its field is in `values` (None after timeout_s).

        The caller's database connection is closed first (unless a transaction is open): hundreds of
        waiting requests must not hold hundreds of connections. The next query opens one again.
        `release=False`: the caller's thread did that already (a LongPollApiMixin handler's does).
        `since`: time.monotonic() taken before the caller read the row and found its field not there yet;
        with it, a listening watcher need not read the row until its id is notified.
        """
        if release:
            await sync_to_async(_release_connections)()
        loop = asyncio.get_running_loop()
        watch = self._loops.get(loop)
        if watch is None:
            watch = self._loops[loop] = _LoopWatch()
        future = loop.create_future()
        watch.add(pk, future, since)
        if watch.task is None or watch.task.done():
            # A fresh context: the task outlives the request that happened to start it.
            watch.task = loop.create_task(self._run(watch), context=contextvars.Context())
        try:
            await asyncio.wait({future}, timeout=max(0.0, timeout_s))
            return future.result() if future.done() and not future.cancelled() else None
        finally:
            watch.discard(pk, future)

    async def _run(self, watch: _LoopWatch) -> None:
        loop = asyncio.get_running_loop()
        executor = self._get_executor()
        idle_since = None
        try:
            while True:
                heard = await self._pause(loop, executor, watch)
                if not watch.waiters:
                    watch.next_full = time.monotonic() + self.notified_interval_s  # no waiter: no look due
                    idle_since = idle_since or loop.time()
                    if self.listener is not None and loop.time() - idle_since < self.IDLE_S:
                        continue  # keep listening a while: the next waiter finds the connection open
                    await loop.run_in_executor(executor, self._close)
                    if not watch.waiters:  # (no await from here on: a newcomer then finds the task done)
                        return
                    continue
                idle_since = None
                named, new = watch.take(heard)
                if heard is None or time.monotonic() >= watch.next_full:
                    watch.next_full = time.monotonic() + self.notified_interval_s
                    named, new = set(watch.waiters), {}
                try:
                    reached = await loop.run_in_executor(executor, self._look, named, new)
                except Exception:  # noqa: BLE001 - waiters keep waiting; try again next tick
                    logger.warning("Watching %s.%s failed; retrying.", self.model.__name__, self.field, exc_info=True)
                    watch.next_full = 0.0  # the rows it was to look at: the next look is at all
                    await loop.run_in_executor(executor, connections.close_all)
                    continue
                for pk, row in reached.items():
                    for future in watch.waiters.get(pk, ()):
                        if not future.done():
                            future.set_result(row)
        except asyncio.CancelledError:
            watch.closing = True  # a listening wait ends within interval_s
            await loop.run_in_executor(executor, self._close)
            raise

    async def _pause(self, loop, executor, watch: _LoopWatch) -> set[str] | None:
        """Until the next look: a tick when not listening (then None: look at all). Listening: until the next
        safety-net tick, a notice naming a waited-for row, or a new waiter (its first look within `interval_s`,
        as without); the ids notified."""
        if self.listener is None or not self.listener.supported:
            await asyncio.sleep(self.interval_s)
            return None
        return await loop.run_in_executor(executor, self._listen, watch, watch.next_full - time.monotonic())

    def _listen(self, watch: _LoopWatch, timeout: float) -> set[str] | None:
        if not self.listener.connect():
            time.sleep(self.interval_s)
            return None
        return self.listener.wait(
            timeout,
            watch.names.__contains__,
            poked=lambda: bool(watch.new) or watch.closing,
            slice_s=min(self.interval_s, 0.05),
        )

    def _close(self) -> None:
        connections.close_all()
        if self.listener is not None:
            self.listener.close()

    def _look(self, pks: set[Any], new: dict[Any, float | None]) -> dict[Any, Model]:
        """`_reached` for `pks` and those new waiters whose notice may have come before they did."""
        listener = self.listener
        for pk, since in new.items():
            if since is None or listener is None or not listener.unheard_since(str(pk), since):
                pks.add(pk)
        return self._reached(list(pks)) if pks else {}

    def _reached(self, pks: list[Any]) -> dict[Any, Model]:
        """The rows that got there, whole (few per tick): their waiters need not read them again. One statement
        written once per number of ids (portal.model_rows): compiling the ORM's query on every look cost more
        than running it (issue 13)."""
        using = router.db_for_read(self.model)
        connection = connections[using]
        pk_field = self.model._meta.pk
        found: dict[Any, Model] = {}
        for i in range(0, len(pks), self.BATCH):
            chunk = pks[i : i + self.BATCH]
            sql, columns = self._statement(using, len(chunk))
            params = [pk_field.get_db_prep_value(pk, connection) for pk in chunk] + list(self.values)
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                rows = cursor.fetchall()
            for values in rows:
                row = columns.instance(values)
                found[row.pk] = row
        return found

    def _statement(self, using: str, count: int) -> tuple[str, ModelColumns]:
        """SELECT the whole rows among `count` ids whose field is in `values` (cached per database and count)."""
        cached = self._statements.get((using, count))
        if cached is None:
            quote = connections[using].ops.quote_name
            meta = self.model._meta
            columns = ModelColumns(self.model, "w", using=using)
            marks = ", ".join(["%s"] * count)
            field_marks = ", ".join(["%s"] * len(self.values))
            sql = (
                f"SELECT {columns.sql} FROM {quote(meta.db_table)} w "  # noqa: S608 - names from _meta only
                f"WHERE w.{quote(meta.pk.column)} IN ({marks}) "
                f"AND w.{quote(meta.get_field(self.field).column)} IN ({field_marks})"
            )
            cached = self._statements[(using, count)] = (sql, columns)
        return cached

    def _get_executor(self) -> ThreadPoolExecutor:
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"watch-{self.model.__name__}")
            return self._executor


def _release_connections() -> None:
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close()


class _LoopWatch:
    """One event loop's waiters (changed only in that loop; the watcher's thread reads `names` and `new`)."""

    def __init__(self):
        self.waiters: dict[Any, set[asyncio.Future]] = {}
        self.names: dict[str, Any] = {}  # str(pk) (a notice's payload) -> pk, for the waited-for rows
        self.new: dict[Any, float | None] = {}  # pks waited for since the last look -> their earliest `since`
        self.next_full = 0.0  # time.monotonic() of the next look at every waited-for row
        self.task: asyncio.Task | None = None
        self.closing = False

    def add(self, pk: Any, future: asyncio.Future, since: float | None) -> None:
        self.waiters.setdefault(pk, set()).add(future)
        self.names[str(pk)] = pk
        earlier = self.new.get(pk, since)
        self.new[pk] = None if since is None or earlier is None else min(since, earlier)

    def discard(self, pk: Any, future: asyncio.Future) -> None:
        waiting = self.waiters.get(pk)
        if waiting is not None:
            waiting.discard(future)
            if not waiting:
                del self.waiters[pk]
                self.names.pop(str(pk), None)

    def take(self, heard: set[str] | None) -> tuple[set[Any], dict[Any, float | None]]:
        """The waited-for pks among notices' payloads, and the waiters new since the last take (still waiting)."""
        new, self.new = self.new, {}
        named = {self.names[name] for name in heard or () if name in self.names}
        return named, {pk: since for pk, since in new.items() if pk in self.waiters}
