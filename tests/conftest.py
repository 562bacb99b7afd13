"""Shared fixtures: tenants, API keys, an API client, money helpers and a real ASR worker process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection
from rest_framework.test import APIClient

from tests.factories import TenantFactory

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def tenant(db):
    return TenantFactory(slug="acme", name="Acme")


@pytest.fixture
def other_tenant(db):
    return TenantFactory(slug="globex", name="Globex")


@pytest.fixture
def api_key(tenant):
    from tenants.services import api_key_create

    return api_key_create(tenant=tenant, name="test")


@pytest.fixture
def api_client(api_key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key[1]}")
    return client


@pytest.fixture
def other_client(other_tenant):
    from tenants.services import api_key_create

    _, raw = api_key_create(tenant=other_tenant, name="other")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


@pytest.fixture
def grant():
    """grant(tenant, tokens): give a tenant tokens through the real service."""
    from billing.services import tokens_grant

    def _grant(tenant, tokens: int):
        return tokens_grant(tenant=tenant, tokens=tokens, memo="test grant")

    return _grant


def assert_ledger_consistent(tenant) -> None:
    """The stored balance equals the ledger sums; held equals the open holds of unfinished jobs and streams."""
    from billing.models import BalanceAccount
    from billing.selectors import ledger_sums
    from streaming.models import StreamSession
    from transcription.models import Transcription

    account = BalanceAccount.objects.get(tenant=tenant)
    available, held = ledger_sums(tenant=tenant)
    assert (account.available, account.held) == (available, held)
    open_holds = sum(
        Transcription.objects.filter(tenant=tenant, status__in=["queued", "running"]).values_list(
            "held_tokens", flat=True
        )
    )
    open_holds += sum(StreamSession.objects.filter(tenant=tenant).values_list("held_tokens", flat=True))
    assert account.held == open_holds
    assert_books_balance()


def assert_books_balance(*, job_rows: bool = True) -> None:
    """`manage.py ledger_verify`'s checks over the whole test database: no drift anywhere. Billing tests that
    move money for hand-made transcription rows (no job lifecycle) skip the job-row check (`job_rows=False`)."""
    from billing.verify import ledger_verify

    report = ledger_verify(registered=job_rows)
    assert report.problems == [], report.problems[:20]


def require_postgresql() -> None:
    """Tests that need PostgreSQL fail (not skip) when CI asks for PostgreSQL and gets something else."""
    if connection.vendor != "postgresql":
        if os.environ.get("TINGXIE_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"This test needs PostgreSQL but runs on {connection.vendor}; check DATABASE_URL.")
        pytest.skip("needs PostgreSQL (set DATABASE_URL); CI runs it there")


@pytest.fixture
def require_postgres():
    require_postgresql()


def database_url() -> str:
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    user = s.get("USER") or "postgres"
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{s.get('HOST') or '127.0.0.1'}:{s.get('PORT') or 5432}/{s['NAME']}"


class WorkerProcess:
    """A real `manage.py qcluster` subprocess for the asr cluster, against the test database."""

    def __init__(self, extra_env: dict | None = None, cluster: str = "asr"):
        from django.conf import settings

        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "portal.settings.test",
            "DATABASE_URL": database_url(),
            "MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "ASR_MODEL": settings.ASR_MODEL,
            "JOB_LEASE_SECONDS": str(settings.JOB_LEASE_SECONDS),
            "PYTHONUNBUFFERED": "1",
            **(extra_env or {}),
        }
        if cluster != "default":
            env["Q_CLUSTER_NAME"] = cluster
        self.log_path = ROOT / "test-output" / f"worker-{cluster}-{os.getpid()}-{time.time_ns()}.log"
        self.log_path.parent.mkdir(exist_ok=True)
        self._log = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def children(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout.split()
        return [int(p) for p in out]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._log.close()


@pytest.fixture(scope="session")
def s3_server():
    """The local S3-compatible server (moto, real S3 HTTP protocol) for this test session."""
    from tests.fakes.s3_server import S3Server

    server = S3Server(ROOT / "test-output")
    yield server
    server.stop()


class S3Bucket:
    """A bucket of one test's own; `url` is the STORAGE_URL that points a process at it."""

    def __init__(self, server, name: str):
        self.server, self.name = server, name
        self.url = server.storage_url(name)

    def keys(self) -> list[str]:
        return self.server.keys(self.name)


@pytest.fixture
def s3_storage(s3_server, settings, tmp_path) -> S3Bucket:
    """Stored audio goes to this test's own bucket; MEDIA_ROOT is an empty folder nothing may write to."""
    from portal.env import storage_from_url

    bucket = S3Bucket(s3_server, s3_server.new_bucket())
    settings.STORAGES = {**settings.STORAGES, "default": storage_from_url(bucket.url)}
    settings.MEDIA_ROOT = tmp_path / "media-unused"
    return bucket


@pytest.fixture
def asr_worker(transactional_db):
    """Start a real ASR worker cluster; yields the WorkerProcess, stops it after the test."""
    worker = WorkerProcess()
    yield worker
    worker.stop()


def wait_for(predicate, *, timeout: float = 90, interval: float = 0.1, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"Timed out after {timeout}s waiting for {message}")


SQLITE_DELETE_TRIGGER = (
    "CREATE TRIGGER IF NOT EXISTS billing_ledger_no_delete BEFORE DELETE ON billing_ledgerentry "
    "BEGIN SELECT RAISE(ABORT, 'billing_ledgerentry is append-only'); END;"
)


@pytest.fixture(autouse=True)
def _ledger_flush_allowed(request):
    """Transactional tests end with a flush (DELETE FROM every table on SQLite). The append-only
    trigger rightly refuses that, so lift it for the flush only; every test starts with it in place.
    PostgreSQL flushes with TRUNCATE, which the row trigger does not see."""
    marker = request.node.get_closest_marker("django_db")
    names = request.fixturenames
    transactional = (
        "transactional_db" in names
        or "live_server" in names
        or (marker is not None and marker.kwargs.get("transaction"))
    )
    uses_db = transactional or marker is not None or "db" in names
    if not uses_db:
        yield
        return
    request.getfixturevalue("transactional_db" if transactional else "db")
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute(SQLITE_DELETE_TRIGGER)
    yield
    if transactional and connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER IF EXISTS billing_ledger_no_delete")
