"""Prometheus metrics, read from the database at scrape time (works across processes)."""

from __future__ import annotations

from django.db.models import Count
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest

from transcription.models import Transcription


def render_metrics() -> tuple[bytes, str]:
    registry = CollectorRegistry()
    jobs = Gauge("tingxie_jobs", "Transcription jobs by status", ["status"], registry=registry)
    counts = dict(Transcription.objects.values_list("status").annotate(n=Count("pk")).values_list("status", "n"))
    for status in Transcription.Status.values:
        jobs.labels(status=status).set(counts.get(status, 0))
    return generate_latest(registry), CONTENT_TYPE_LATEST
