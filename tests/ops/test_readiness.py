"""/readyz: the database, the broker and a recent ASR cluster heartbeat; a 503 names what is down."""

from __future__ import annotations

import socket
from datetime import timedelta
from unittest import mock

import pytest
from django.db import OperationalError, connection
from django.utils import timezone

from portal.heartbeats import cluster_heartbeat, cluster_heartbeat_end
from portal.models import ClusterHeartbeat

pytestmark = pytest.mark.django_db


@pytest.fixture
def asr_beat():
    cluster_heartbeat(cluster="asr", started_at=timezone.now())
    yield
    cluster_heartbeat_end(cluster="asr")


def test_ready_when_everything_is_up(client, asr_beat):
    response = client.get("/readyz")
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "ok" and response.json()["down"] == []


def test_healthz_stays_liveness_without_workers(client):
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 503


def test_no_asr_cluster_ever(client):
    ClusterHeartbeat.objects.create(
        cluster="default", host="h", pid=1, started_at=timezone.now(), last_seen_at=timezone.now()
    )  # only the default cluster runs
    body = client.get("/readyz").json()
    assert body["down"] == ["asr_workers"]
    assert "make worker" in body["checks"]["asr_workers"]


def test_asr_heartbeat_too_old(client, settings):
    old = timezone.now() - timedelta(seconds=settings.CLUSTER_HEARTBEAT_MAX_AGE_S + 5)
    ClusterHeartbeat.objects.create(cluster="asr", host="gpu1", pid=7, started_at=old, last_seen_at=old)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["down"] == ["asr_workers"]
    assert old.isoformat() in response.json()["checks"]["asr_workers"]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_redis_broker_down(client, settings, asr_beat):
    settings.Q_BROKER = "redis"
    settings.REDIS_URL = f"redis://127.0.0.1:{_closed_port()}/0"
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["down"] == ["broker"]
    assert "redis" in response.json()["checks"]["broker"]


def test_database_down(client, asr_beat):
    with mock.patch.object(connection, "cursor", side_effect=OperationalError("connection refused")):
        response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["down"] == ["database", "asr_workers"]
    assert "connection refused" in body["checks"]["database"]


def test_a_clean_stop_removes_the_beat(asr_beat):
    assert ClusterHeartbeat.objects.filter(cluster="asr").count() == 1
    cluster_heartbeat_end(cluster="asr")
    assert not ClusterHeartbeat.objects.filter(cluster="asr").exists()
