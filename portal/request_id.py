"""The current request's id (a context variable) and the logging filter that puts it on every record."""

from __future__ import annotations

import logging
import re
import uuid
from contextvars import ContextVar

# "-" outside a request (workers, management commands).
request_id_var: ContextVar[str] = ContextVar("request_id", default="-")

# What we accept from a client or proxy: a short token that cannot forge log lines or headers.
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:=+/-]{0,127}")


def request_id_from(incoming: str | None) -> str:
    """The client's X-Request-ID if it is safe to log and echo, else a fresh one."""
    if incoming and _SAFE_REQUEST_ID.fullmatch(incoming):
        return incoming
    return uuid.uuid4().hex


def request_id_get() -> str:
    return request_id_var.get()


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every record (LOGGING's format prints it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True
