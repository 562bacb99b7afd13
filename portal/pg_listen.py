"""Wake-ups from PostgreSQL's LISTEN/NOTIFY, for a thread that would otherwise poll on a timer.

A `Listener` holds one connection of its own (autocommit, outside Django's pool, so the LISTEN never leaks to
another user of a pooled connection) and blocks for at most `timeout` until a notice on its channel carries a
payload the caller wants. A notice is only a hint to look now: the caller still reads the rows, so a lost notice
costs at most one timer tick. On another database, or while PostgreSQL cannot be reached, `wait()` just sleeps
(a reconnect is tried at most every RETRY_S). All methods are for one thread (the watcher's).

It remembers the payloads it heard in the last RECENT_S (at most RECENT_MAX), so that `unheard_since()` can tell a
caller that nothing it cares about was notified since some moment: PostgreSQL delivers every notice of a transaction
that commits after the LISTEN to this connection (read already, and remembered, or still to be read by `wait()`).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable

from django.db import connections

logger = logging.getLogger(__name__)

RETRY_S = 5.0
RECENT_S = 10.0  # how long a heard payload is remembered
RECENT_MAX = 10_000  # payloads remembered at most (the oldest are forgotten first)


class Listener:
    def __init__(self, channel: str, *, alias: str = "default"):
        self.channel = channel
        self.alias = alias
        self._conn = None
        self._failed_at: float | None = None
        self._listening_since: float | None = None  # when this connection's LISTEN took effect
        self._heard: dict[str, float] = {}  # payload -> when last heard
        self._order: deque[tuple[float, str]] = deque()  # (when, payload), oldest first
        self._forgotten_until = float("-inf")  # the latest time at which a payload no longer remembered was heard

    @property
    def supported(self) -> bool:
        return connections[self.alias].vendor == "postgresql"

    def connect(self) -> bool:
        """Listen now if not yet (or again, RETRY_S after a failure); True while listening."""
        return self._connect() is not None

    def wait(
        self, timeout: float, wanted: Callable[[str], bool], *, poked: Callable[[], bool] = bool, slice_s: float = 0.05
    ) -> set[str] | None:
        """Block up to `timeout` s for a notice whose payload is `wanted`, or until `poked()` says to look now (asked
        every `slice_s`), then take every notice already received too (jobs often end several at once). The wanted
        payloads heard (empty: none), or None when not listening: it slept, or listening failed (notices may have
        been lost: the caller should look at everything)."""
        deadline = time.monotonic() + timeout
        conn = self._connect()
        if conn is None:
            time.sleep(max(0.0, timeout))
            return None
        import psycopg

        found: set[str] = set()
        try:
            while not found and (left := deadline - time.monotonic()) > 0:
                # Never leave these loops early: the rest of a batch of notices would be dropped with the generator.
                for notice in conn.notifies(timeout=min(left, slice_s), stop_after=1):
                    self._hear(notice.payload, wanted, found)
                if poked():
                    break
            for notice in conn.notifies(timeout=0):
                self._hear(notice.payload, wanted, found)
            return found
        except psycopg.Error as exc:
            logger.warning("Listening on %s failed (%s); polling until it reconnects.", self.channel, exc)
            self.close()
            self._failed_at = time.monotonic()
            return None

    def unheard_since(self, payload: str, since: float) -> bool:
        """True when no notice carrying `payload` can have been committed since `since` (time.monotonic()) without
        `wait()` still to report it: this connection has listened since before `since`, remembers every payload it
        heard since then, and none was `payload`. False when it cannot tell, or heard it."""
        return (
            self._conn is not None
            and not self._conn.closed
            and self._listening_since is not None
            and self._listening_since < since
            and self._forgotten_until < since
            and payload not in self._heard
        )

    def _hear(self, payload: str, wanted: Callable[[str], bool], found: set[str]) -> None:
        now = time.monotonic()
        self._heard[payload] = now
        self._order.append((now, payload))
        while self._order and (len(self._order) > RECENT_MAX or self._order[0][0] < now - RECENT_S):
            at, old = self._order.popleft()
            self._forgotten_until = max(self._forgotten_until, at)
            if self._heard.get(old) == at:
                del self._heard[old]
        if wanted(payload):
            found.add(payload)

    def close(self) -> None:
        self._listening_since = None
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                conn.close()
            except Exception as exc:  # noqa: BLE001 - closing a broken connection
                logger.debug("Closing the %s listener: %s", self.channel, exc)

    def _connect(self):
        if self._conn is not None and not self._conn.closed:
            return self._conn
        self._conn = None
        if not self.supported or (self._failed_at is not None and time.monotonic() - self._failed_at < RETRY_S):
            return None
        import psycopg
        from psycopg import sql

        params = connections[self.alias].get_connection_params()
        params.pop("cursor_factory", None)  # Django's cursor classes; this connection only listens
        try:
            conn = psycopg.connect(**params, autocommit=True)
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
        except psycopg.Error as exc:
            logger.warning("Cannot listen on %s (%s); polling instead for %.0f s.", self.channel, exc, RETRY_S)
            self._failed_at = time.monotonic()
            return None
        self._failed_at = None
        self._listening_since = time.monotonic()
        self._conn = conn
        return conn
