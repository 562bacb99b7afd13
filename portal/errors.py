"""One domain error type and the one place that maps errors to {"error": {"code", "message"}}."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler, set_rollback

from portal.request_id import request_id_get

# Paths whose errors are JSON in the documented shape (everything else is the dashboard's HTML).
API_PATH_PREFIXES = ("/api/", "/v1/", "/webhooks/")
# The database is down or dropped our connection: the request may succeed if retried.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)
RETRY_AFTER_SECONDS = 10

request_logger = logging.getLogger("django.request")


class DomainError(Exception):
    """A failure the caller can act on; `code` is stable and documented."""

    code = "invalid_request"
    status_code = 400

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status_code: int | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        if status_code:
            self.status_code = status_code
        self.headers = dict(headers or {})  # response headers, e.g. x-should-retry
        self.extra = extra


class NotFound(DomainError):
    code = "not_found"
    status_code = 404


class InvalidRequest(DomainError):
    code = "invalid_request"
    status_code = 400


class UnsupportedAudio(DomainError):
    code = "unsupported_audio"
    status_code = 400


class FileTooLarge(DomainError):
    code = "file_too_large"
    status_code = 413


class AudioTooLong(DomainError):
    code = "audio_too_long"
    status_code = 413


class InsufficientBalance(DomainError):
    code = "insufficient_balance"
    status_code = 402


class IdempotencyConflict(DomainError):
    code = "idempotency_conflict"
    status_code = 409


class Conflict(DomainError):
    code = "conflict"
    status_code = 409


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def is_api_path(path: str) -> bool:
    return path.startswith(API_PATH_PREFIXES)


# --- the OpenAI-compatible surface (/v1/) answers errors in OpenAI's shape --------------------------------
OPENAI_PATH_PREFIX = "/v1/"
# Where OpenAI has its own code for the same condition, clients test for that one.
_OPENAI_CODES = {"rate_limited": "rate_limit_exceeded", "insufficient_balance": "insufficient_quota"}


def _openai_type(status_code: int, code: str) -> str:
    if code == "insufficient_balance":
        return "insufficient_quota"
    if status_code == 429:
        return "requests"
    if status_code >= 500:
        return "server_error"
    if status_code == 403:
        return "permission_error"
    return "invalid_request_error"


def _first_field_error(fields: Any, prefix: str = "") -> tuple[str | None, str] | None:
    """(param, message) of the first field error in a DRF ValidationError's detail."""
    if isinstance(fields, dict):
        for key, value in fields.items():
            name = None if key == "non_field_errors" else f"{prefix}{key}"
            found = _first_field_error(value, f"{name}." if name else prefix)
            if found:
                return found[0] if found[0] is not None else name, found[1]
        return None
    if isinstance(fields, list):
        for item in fields:
            found = _first_field_error(item, prefix)
            if found:
                return found
        return None
    return (prefix.rstrip(".") or None), str(fields)


def openai_error_body(body: dict[str, Any], status_code: int) -> dict[str, Any]:
    """An error body in OpenAI's shape: {"error": {"message", "type", "param", "code", ...our extras}}.

    The official SDKs fill `e.message`, `e.type`, `e.param` and `e.code` from it; a field error names the
    field in `param`, not in the message.
    """
    error = dict(body.get("error") or {})
    code = str(error.pop("code", "") or "")
    message = str(error.pop("message", "") or "")
    param = error.pop("param", None)
    fields = error.pop("fields", None)
    if fields is not None:
        first = _first_field_error(fields)
        if first is not None:
            param, message = first[0] if param is None else param, first[1]
    return {
        "error": {
            "message": message,
            "type": _openai_type(status_code, code),
            "param": param,
            "code": _OPENAI_CODES.get(code, code) or None,
            **error,
        }
    }


def shaped_error(path: str, body: dict[str, Any], status_code: int) -> dict[str, Any]:
    """The error body as the path's clients expect it (OpenAI's shape under /v1/, ours elsewhere)."""
    return openai_error_body(body, status_code) if path.startswith(OPENAI_PATH_PREFIX) else body


def unhandled_error(exc: BaseException | None) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(status, body, headers) for an exception nothing else mapped: 503 for a database outage, else 500.

    The body never shows the exception (it may hold SQL or secrets); the request id finds it in the logs.
    """
    if isinstance(exc, DATABASE_UNAVAILABLE):
        body = error_body(
            "service_unavailable",
            f"The service is temporarily unavailable; retry in {RETRY_AFTER_SECONDS} seconds.",
            request_id=request_id_get(),
        )
        return 503, body, {"Retry-After": str(RETRY_AFTER_SECONDS)}
    body = error_body(
        "internal_error",
        "Internal server error; it has been logged. Quote the request_id if you contact support.",
        request_id=request_id_get(),
    )
    return 500, body, {}


def log_unhandled(request, exc: BaseException, status_code: int) -> None:
    """Log like Django does for an uncaught exception (same logger, with the traceback)."""
    request_logger.error(
        "%s: %s",
        "Service Unavailable" if status_code == 503 else "Internal Server Error",
        request.path,
        exc_info=(type(exc), exc, exc.__traceback__),
        extra={"status_code": status_code, "request": request},
    )


def _flatten(detail: Any, prefix: str = "") -> list[str]:
    if isinstance(detail, dict):
        out: list[str] = []
        for key, value in detail.items():
            name = "" if key == "non_field_errors" else f"{prefix}{key}"
            out.extend(_flatten(value, f"{name}." if name else ""))
        return out
    if isinstance(detail, list):
        out = []
        for item in detail:
            out.extend(_flatten(item, prefix))
        return out
    field = prefix.rstrip(".")
    return [f"{field}: {detail}" if field else str(detail)]


_DRF_CODES = {
    exceptions.NotAuthenticated: ("invalid_api_key", 401),
    exceptions.AuthenticationFailed: ("invalid_api_key", 401),
    exceptions.NotFound: ("not_found", 404),
    exceptions.PermissionDenied: ("permission_denied", 403),
    exceptions.Throttled: ("rate_limited", 429),
    exceptions.MethodNotAllowed: ("method_not_allowed", 405),
    exceptions.UnsupportedMediaType: ("invalid_request", 415),
    exceptions.ParseError: ("invalid_request", 400),
    exceptions.NotAcceptable: ("invalid_request", 406),
}


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF EXCEPTION_HANDLER: every error leaves in the documented shape (OpenAI's under /v1/)."""
    response = _api_exception_response(exc, context)
    request = context.get("request")
    if response is not None and request is not None and isinstance(response.data, dict):
        response.data = shaped_error(request.path, response.data, response.status_code)
    return response


def _api_exception_response(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, DomainError):
        return Response(error_body(exc.code, exc.message, **exc.extra), status=exc.status_code, headers=exc.headers)
    if isinstance(exc, RequestDataTooBig):
        return Response(error_body("file_too_large", str(exc)), status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is None:
        # Anything else is our failure (or the database's): still the documented shape, never HTML.
        set_rollback()
        status_code, body, headers = unhandled_error(exc)
        request = context.get("request")
        if request is not None:
            log_unhandled(getattr(request, "_request", request), exc, status_code)
        response = Response(body, status=status_code, headers=headers)
        response._has_been_logged = True  # logged above with the traceback; Django need not log it again
        return response
    if isinstance(exc, exceptions.ValidationError):
        messages = _flatten(exc.detail)
        response.data = error_body("invalid_request", "; ".join(messages) or "Invalid request.", fields=exc.detail)
        response.status_code = 400
        return response
    code, status_code = "invalid_request", response.status_code
    for klass, (mapped_code, mapped_status) in _DRF_CODES.items():
        if isinstance(exc, klass):
            code, status_code = mapped_code, mapped_status
            break
    message = str(exc.detail) if isinstance(exc, exceptions.APIException) else str(exc)
    if code == "invalid_api_key":
        message = (
            "Missing or invalid API key. Send 'Authorization: Bearer <key>'; create keys in the dashboard "
            "under API keys."
        )
    response.data = error_body(code, message)
    response.status_code = status_code
    return response
