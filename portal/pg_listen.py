"""Wake-ups from PostgreSQL's LISTEN/NOTIFY, for a thread that would otherwise poll on a timer.

A `Listener` holds one connection of its own (autocommit, outside Django's pool, so the LISTEN never leaks to
another user of a pooled connection) and blocks for at most `timeout` until a notice on its channel carries a
payload the caller wants. A notice is only a hint to look now: the caller still reads the rows, so a lost notice
costs at most one timer tick. On another database, or while PostgreSQL cannot be reached, `wait()` just sleeps
(a reconnect is tried at most every RETRY_S). All methods are for one thread (the watcher's).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.db import connections

logger = logging.getLogger(__name__)

RETRY_S = 5.0


class Listener:
    def __init__(self, channel: str, *, alias: str = "default"):
        self.channel = channel
        self.alias = alias
        self._conn = None
        self._failed_at: float | None = None

    @property
    def supported(self) -> bool:
        return connections[self.alias].vendor == "postgresql"

    def wait(
        self, timeout: float, wanted: Callable[[str], bool], *, poked: Callable[[], bool] = bool, slice_s: float = 0.05
    ) -> bool:
        """Block up to `timeout` s for a notice whose payload is `wanted`, or until `poked()` says to look now
        (asked every `slice_s`); True if either happened (else it slept)."""
        deadline = time.monotonic() + timeout
        conn = self._connect()
        if conn is None:
            time.sleep(timeout)
            return False
        import psycopg

        try:
            while (left := deadline - time.monotonic()) > 0:
                for notice in conn.notifies(timeout=min(left, slice_s), stop_after=1):
                    if wanted(notice.payload):
                        return True
                if poked():
                    return True
            return False
        except psycopg.Error as exc:
            logger.warning("Listening on %s failed (%s); polling until it reconnects.", self.channel, exc)
            self.close()
            self._failed_at = time.monotonic()
            time.sleep(max(0.0, deadline - time.monotonic()))
            return False

    def close(self) -> None:
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
        self._conn = conn
        return conn
