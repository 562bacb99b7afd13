"""Operational endpoints (liveness, readiness, Prometheus metrics; they never touch the model) and error pages."""

import logging
import sys

from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.views import defaults

from portal.errors import error_body, is_api_path, shaped_error, unhandled_error

logger = logging.getLogger(__name__)


def healthz(request):
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        db = "ok"
    except Exception as exc:  # noqa: BLE001 - health must report, not raise
        return JsonResponse({"status": "error", "database": str(exc)}, status=503)
    return JsonResponse({"status": "ok", "database": db})


def readyz(request):
    """Readiness: the database, the broker and a recent ASR cluster heartbeat; 503 naming what is down."""
    from portal.readiness import readiness_checks

    checks = readiness_checks()
    down = [name for name, (ok, _) in checks.items() if not ok]
    body = {"status": "ok" if not down else "unavailable", "down": down}
    body["checks"] = {name: detail for name, (_, detail) in checks.items()}
    if down:
        logger.warning("Not ready: %s", "; ".join(f"{name}: {checks[name][1]}" for name in down))
    return JsonResponse(body, status=503 if down else 200)


def metrics(request):
    """Prometheus exposition; only for METRICS_TOKEN bearers and METRICS_ALLOWED_IPS."""
    from portal import metrics as prometheus
    from transcription.metrics import QueueCollector

    allowed = prometheus.scrape_allowed(
        authorization=request.headers.get("Authorization", ""), remote_addr=request.META.get("REMOTE_ADDR", "")
    )
    if not allowed:
        return JsonResponse(
            error_body("forbidden", "Send Authorization: Bearer <METRICS_TOKEN> or scrape from METRICS_ALLOWED_IPS."),
            status=403,
        )
    body, content_type = prometheus.render([QueueCollector()])
    return HttpResponse(body, content_type=content_type)


def not_found(request, exception=None):
    if is_api_path(request.path):
        return JsonResponse(shaped_error(request.path, error_body("not_found", "No such resource."), 404), status=404)
    return render(request, "404.html", status=404)


def server_error(request):
    """handler500: on API paths the documented JSON shape with the request id, 503 for a database outage.

    Django calls it while handling the exception (in async mode through sync_to_async, which re-raises the
    exception in its thread), so sys.exception() is the error a middleware raised."""
    if is_api_path(request.path):
        status_code, body, headers = unhandled_error(sys.exception())
        return JsonResponse(shaped_error(request.path, body, status_code), status=status_code, headers=headers)
    return defaults.server_error(request)
