"""Logging: plain lines for a terminal or one JSON object per line, each carrying the request id, tenant and job.

The context (tenant, job) lives in context variables set once where it becomes known (authentication, the
task that runs a job); every record logged inside picks it up through ContextFilter.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from contextvars import ContextVar

tenant_var: ContextVar[str] = ContextVar("log_tenant", default="-")
job_var: ContextVar[str] = ContextVar("log_job", default="-")

PLAIN_FORMAT = "%(asctime)s %(levelname)s [%(process)d] [%(request_id)s] %(name)s %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s %(request_id)s %(tenant)s %(job_id)s"


def log_tenant(tenant_id) -> None:
    """The tenant the current request or task acts for (the request's middleware resets it)."""
    tenant_var.set(str(tenant_id))


@contextmanager
def job_logging(job_id):
    """Every record logged inside the block carries this job id."""
    token = job_var.set(str(job_id))
    try:
        yield
    finally:
        job_var.reset(token)


class ContextFilter(logging.Filter):
    """Adds `tenant` and `job_id` (unless the call passed them in `extra`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "tenant"):
            record.tenant = tenant_var.get()
        if not hasattr(record, "job_id"):
            record.job_id = job_var.get()
        return True


def logging_config(*, fmt: str, level: str) -> dict:
    """LOGGING for `fmt` "plain" or "json". Third-party chatter (funasr, modelscope, SQL) stays at WARNING."""
    formatters = {
        "plain": {"format": PLAIN_FORMAT},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": JSON_FIELDS,
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
            "json_ensure_ascii": False,
        },
    }
    if fmt not in formatters:
        raise ValueError(f"LOG_FORMAT must be 'plain' or 'json' (got {fmt!r}).")
    quiet = {"level": "WARNING"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        # request_id: the X-Request-ID of the request being served ("-" outside one); see portal.request_id.
        "filters": {
            "request_id": {"()": "portal.request_id.RequestIdFilter"},
            "context": {"()": "portal.logs.ContextFilter"},
        },
        "formatters": {fmt: formatters[fmt]},
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": fmt, "filters": ["request_id", "context"]}
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {"django.db.backends": quiet, "funasr": quiet, "modelscope": quiet, "jieba": quiet},
    }
