"""`make run` (scripts/run.sh) ends every process within 10 s of a SIGTERM, every time.

systemd, docker and `timeout` signal the whole process group; that once left both qcluster processes
hanging forever. Each run gets its own SQLite database, media folder and port, never the developer's var/.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

from tests.conftest import ROOT

pytestmark = pytest.mark.slow

STOP_LIMIT_S = 10


@pytest.fixture(scope="module")
def run_env(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("run")
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}",
        "MEDIA_ROOT": str(tmp / "media"),
        "DJANGO_SECRET_KEY": "shutdown-test-" + "x" * 50,
        "ASR_MODEL": str(ROOT / "tests" / "fixtures" / "models" / "sensevoice_trained"),
        "STREAM_ONLINE_MODEL": "",  # no hub download: finals only
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)  # run.sh sets local settings itself
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=ROOT, env={**env, "DJANGO_SETTINGS_MODULE": "portal.settings.local"}, check=True, timeout=120,
    )  # fmt: skip
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def group_members(pgid: int) -> list[str]:
    out = subprocess.run(["ps", "-o", "pid=,stat=,args=", "-g", str(pgid)], capture_output=True, text=True).stdout
    # A zombie has ended; it only waits for a parent that is itself about to end.
    return [line for line in out.splitlines() if line.split()[1:2] and not line.split()[1].startswith("Z")]


def start(env: dict, log_path) -> tuple[subprocess.Popen, str]:
    port, stream_port = free_port(), free_port()
    log = open(log_path, "ab")  # noqa: SIM115
    proc = subprocess.Popen(
        ["scripts/run.sh"], cwd=ROOT, env={**env, "PORT": str(port), "STREAM_PORT": str(stream_port)}, stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, as under systemd or docker
    )  # fmt: skip
    log.close()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(proc, url, log_path)
        wait_stream_worker(proc, stream_port, log_path)
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)  # never leave the stack behind
        proc.wait(timeout=10)
        raise
    return proc, url


def wait_until_up(proc: subprocess.Popen, url: str, log_path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, log_path.read_text(errors="replace")[-3000:]
        try:
            if requests.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except requests.RequestException:
            pass
        time.sleep(0.1)
    else:
        raise AssertionError("run.sh did not answer /healthz within 60 s")
    # Both task clusters up (sentinel and workers forked): the case that used to hang.
    deadline = time.monotonic() + 60
    while log_path.read_text(errors="replace").count("running.") < 2:
        assert time.monotonic() < deadline, log_path.read_text(errors="replace")[-3000:]
        time.sleep(0.1)


def wait_stream_worker(proc: subprocess.Popen, port: int, log_path) -> None:
    """run.sh also starts the stream worker: its health document answers on STREAM_PORT."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, log_path.read_text(errors="replace")[-3000:]
        try:
            if requests.get(f"http://127.0.0.1:{port}/", timeout=1).json()["protocol"] == "funasr":
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise AssertionError("run.sh did not start the stream worker within 60 s")


def stopped_within(proc: subprocess.Popen, limit_s: float) -> float:
    t0 = time.monotonic()
    while group_members(proc.pid) and time.monotonic() - t0 < limit_s + 5:
        time.sleep(0.05)
    elapsed = time.monotonic() - t0
    left = group_members(proc.pid)
    if left:
        os.killpg(proc.pid, signal.SIGKILL)
    assert not left, f"still running {elapsed:.1f} s after the signal: {left}"
    proc.wait(timeout=5)
    return elapsed


def test_sigterm_to_the_group_ends_every_process_within_10s_five_times(run_env, tmp_path):
    times = []
    for i in range(5):
        proc, _url = start({**run_env, "LOG_LEVEL": "INFO"}, tmp_path / f"run-{i}.log")
        os.killpg(proc.pid, signal.SIGTERM)
        times.append(stopped_within(proc, STOP_LIMIT_S))
    print("stop times (s):", ", ".join(f"{t:.2f}" for t in times))
    assert max(times) <= STOP_LIMIT_S, times


def test_sigterm_to_run_sh_alone_is_forwarded_once(run_env, tmp_path):
    log_path = tmp_path / "run.log"
    proc, _url = start({**run_env, "LOG_LEVEL": "INFO"}, log_path)
    proc.send_signal(signal.SIGTERM)
    assert stopped_within(proc, STOP_LIMIT_S) <= STOP_LIMIT_S
    assert "killing" not in log_path.read_text(errors="replace"), "every process stopped by itself"
