"""Scrape-time gauges of the queues and clusters (cheap reads: broker lengths, indexed counts, heartbeats).

The counters and histograms are recorded by the processes themselves (portal.metrics, transcription.instruments).
"""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from portal.heartbeats import cluster_alive_counts, cluster_last_beats
from transcription.selectors import transcription_queue_stats

ASR_CLUSTER = "asr"


def cluster_names() -> list[str]:
    return [settings.Q_CLUSTER.get("name", "default"), *settings.Q_CLUSTER.get("ALT_CLUSTERS", {})]


class QueueCollector(Collector):
    """Queue depth per cluster, active jobs, the oldest queued job's age, and each cluster's last heartbeat."""

    def collect(self):
        from django_q.brokers import get_broker

        now = timezone.now()
        depth = GaugeMetricFamily("tingxie_queue_depth", "Tasks waiting in the broker", labels=["cluster"])
        for name in cluster_names():
            depth.add_metric([name], get_broker(name).queue_size())
        yield depth

        stats = transcription_queue_stats()
        jobs = GaugeMetricFamily("tingxie_jobs", "Transcription jobs not yet final, by status", labels=["status"])
        for status, n in stats["counts"].items():
            jobs.add_metric([status], n)
        yield jobs
        oldest = stats["oldest_enqueued_at"]
        age = GaugeMetricFamily(
            "tingxie_queue_oldest_job_age_seconds", "Age of the oldest queued job (0: none)", labels=["cluster"]
        )
        age.add_metric([ASR_CLUSTER], max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)
        yield age

        beats = cluster_last_beats()
        alive = cluster_alive_counts()
        last = GaugeMetricFamily(
            "tingxie_cluster_last_heartbeat_timestamp_seconds", "Newest heartbeat of a cluster", labels=["cluster"]
        )
        processes = GaugeMetricFamily(
            "tingxie_cluster_processes_alive", "qcluster processes with a recent heartbeat", labels=["cluster"]
        )
        for name in sorted(set(cluster_names()) | set(beats)):
            if name in beats:
                last.add_metric([name], beats[name].timestamp())
            processes.add_metric([name], alive.get(name, 0))
        yield last
        yield processes
