"""What /readyz checks: the database, the task broker, and that an ASR cluster beat recently."""

from __future__ import annotations

from django.conf import settings
from django.db import connection

from portal.heartbeats import cluster_last_beats, heartbeat_fresh_after

ASR_CLUSTER = "asr"


def _database() -> tuple[bool, str]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - readiness reports, never raises
        return False, f"{type(exc).__name__}: {exc}"
    return True, "ok"


def _broker() -> tuple[bool, str]:
    if settings.Q_BROKER != "redis":
        return True, "orm (the database)"
    import redis

    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
        client.ping()
        client.close()
    except Exception as exc:  # noqa: BLE001
        return False, f"redis: {type(exc).__name__}: {exc}"
    return True, "redis"


def _asr_cluster(database_ok: bool) -> tuple[bool, str]:
    if not database_ok:
        return False, "unknown (the database is down)"
    try:
        last = cluster_last_beats().get(ASR_CLUSTER)
    except Exception as exc:  # noqa: BLE001
        return False, f"{type(exc).__name__}: {exc}"
    if last is None:
        return False, "no ASR worker cluster has ever reported; start one (`make worker`)"
    if last < heartbeat_fresh_after():
        return False, f"the newest ASR cluster heartbeat is from {last.isoformat()}"
    return True, f"last heartbeat {last.isoformat()}"


def readiness_checks() -> dict[str, tuple[bool, str]]:
    database = _database()
    return {"database": database, "broker": _broker(), "asr_workers": _asr_cluster(database[0])}
