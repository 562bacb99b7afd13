"""Operational endpoints: health and Prometheus metrics. They never touch the model."""

from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render

from portal.errors import error_body


def healthz(request):
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        db = "ok"
    except Exception as exc:  # noqa: BLE001 - health must report, not raise
        return JsonResponse({"status": "error", "database": str(exc)}, status=503)
    return JsonResponse({"status": "ok", "database": db})


def metrics(request):
    from transcription.metrics import render_metrics

    body, content_type = render_metrics()
    return HttpResponse(body, content_type=content_type)


def not_found(request, exception=None):
    if request.path.startswith(("/api/", "/v1/", "/webhooks/")):
        return JsonResponse(error_body("not_found", "No such resource."), status=404)
    return render(request, "404.html", status=404)
