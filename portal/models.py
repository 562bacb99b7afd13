"""Rows the project package itself keeps: the liveness beats of django-q2 clusters (any machine, any app)."""

from django.db import models


class ClusterHeartbeat(models.Model):
    """One running `manage.py qcluster` process; its main loop refreshes `last_seen_at` while its sentinel lives."""

    cluster = models.CharField(max_length=64)
    host = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    last_seen_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["cluster", "host", "pid"], name="uniq_cluster_process")]

    def __str__(self) -> str:
        return f"{self.cluster}@{self.host}:{self.pid}"
