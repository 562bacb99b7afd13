"""A real stream worker (`manage.py stream`, uvicorn) against the test database, with tiny models (one per run)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

from tests.conftest import ROOT, database_url

FIXTURE_MODEL = ROOT / "tests" / "fixtures" / "models" / "sensevoice_trained"
SERVER_ENV = {  # small limits, so the tests reach them
    "STREAM_MAX_SESSIONS": "3",
    "STREAM_MAX_SESSIONS_PER_KEY": "2",
    "STREAM_BURST_SECONDS": "20",
    "STREAM_MAX_FRAME_BYTES": str(32000 * 15),
    "STREAM_REPLICAS": "1",
    "REALTIME_MAX_UNCOMMITTED_SECONDS": "12",
}


@pytest.fixture(scope="session")
def streaming_model(tmp_path_factory):
    """A tiny streaming Paraformer built with the real command (random weights: partials are not words)."""
    out = tmp_path_factory.mktemp("models") / "paraformer_streaming"
    subprocess.run(
        [sys.executable, "manage.py", "build_test_model", str(out), "--kind", "paraformer_streaming"],
        cwd=ROOT, env={**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings.test"}, check=True, timeout=180,
        capture_output=True,
    )  # fmt: skip
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StreamWorker:
    def __init__(self, model_dir, extra_env: dict | None = None) -> None:
        from django.conf import settings

        self.port = free_port()
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "portal.settings.test",
            "DATABASE_URL": database_url(),
            "MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "ASR_MODEL": str(FIXTURE_MODEL),
            "STREAM_ONLINE_MODEL": str(model_dir),
            "STREAM_DEVICE": "cpu",
            "PYTHONUNBUFFERED": "1",
            **SERVER_ENV,
            **(extra_env or {}),
        }
        self.log_path = ROOT / "test-output" / f"stream-{os.getpid()}-{time.time_ns()}.log"
        self.log_path.parent.mkdir(exist_ok=True)
        log = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "stream", "--port", str(self.port)], cwd=ROOT, env=env, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        log.close()
        self.url = f"ws://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log()[-3000:]
            try:
                body = requests.get(f"http://127.0.0.1:{self.port}/", timeout=10).json()
                if body["status"] == "ok":
                    return
                assert body["status"] == "loading", body
            except requests.RequestException:
                pass  # not listening yet, or the box is busy
            time.sleep(0.3)
        raise AssertionError("stream worker not ready:\n" + self.log()[-3000:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


@pytest.fixture(scope="session")
def stream_worker(django_db_setup, django_db_blocker, streaming_model):
    worker = StreamWorker(streaming_model)
    try:
        worker.wait_ready()
        yield worker
    finally:
        worker.stop()
        with django_db_blocker.unblock():
            _wait_backends_gone()


def _wait_backends_gone(timeout: float = 10) -> None:
    """PostgreSQL ends a dead client's backend a moment later; the test database is dropped after us."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            if cursor.fetchone()[0] == 0:
                return
            time.sleep(0.1)


@pytest.fixture(autouse=True)
def _streams_closed_before_flush(request):
    """A stream worker closes (settles) a session a moment after its client leaves. The database flush that ends a
    transactional test must not race that write: PostgreSQL answered such a TRUNCATE with a deadlock, and the
    rows it left behind failed later tests. So a test that used the worker waits here for its sessions to close."""
    if request.node.get_closest_marker("django_db") is None or "stream_worker" not in request.fixturenames:
        yield
        return
    request.getfixturevalue("_django_db_helper")  # set up before this fixture, so flushed after its teardown
    yield
    from streaming.models import StreamSession

    deadline = time.monotonic() + 20
    while StreamSession.objects.filter(status=StreamSession.Status.OPEN).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
