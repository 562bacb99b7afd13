"""Cluster liveness: each `manage.py qcluster` beats into the database; readiness and metrics read the beats."""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Max
from django.utils import timezone

from portal.models import ClusterHeartbeat

# Beats older than this are dropped (processes that ended without saying so).
FORGET_AFTER = timedelta(days=1)


def cluster_heartbeat(*, cluster: str, started_at: datetime) -> None:
    """Record that this process's cluster is alive now."""
    now = timezone.now()
    ClusterHeartbeat.objects.update_or_create(
        cluster=cluster,
        host=socket.gethostname()[:255],
        pid=os.getpid(),
        defaults={"last_seen_at": now},
        create_defaults={"last_seen_at": now, "started_at": started_at},
    )
    ClusterHeartbeat.objects.filter(last_seen_at__lt=now - FORGET_AFTER).delete()


def cluster_heartbeat_end(*, cluster: str) -> None:
    """This process's cluster stopped cleanly: it is no longer counted as alive."""
    ClusterHeartbeat.objects.filter(cluster=cluster, host=socket.gethostname()[:255], pid=os.getpid()).delete()


def heartbeat_fresh_after() -> datetime:
    return timezone.now() - timedelta(seconds=settings.CLUSTER_HEARTBEAT_MAX_AGE_S)


def cluster_last_beats() -> dict[str, datetime]:
    """The newest beat of each cluster name (one small grouped query)."""
    rows = ClusterHeartbeat.objects.values("cluster").annotate(last=Max("last_seen_at"))
    return {row["cluster"]: row["last"] for row in rows}


def cluster_alive_counts() -> dict[str, int]:
    """Processes per cluster name that beat within CLUSTER_HEARTBEAT_MAX_AGE_S."""
    counts: dict[str, int] = {}
    for name in ClusterHeartbeat.objects.filter(last_seen_at__gte=heartbeat_fresh_after()).values_list(
        "cluster", flat=True
    ):
        counts[name] = counts.get(name, 0) + 1
    return counts
