"""portal.cpu_priority: ASR_NICE lowers the session's scheduling group when the process leads its own session
(otherwise a nice process keeps its group's full share against the web's group), and only then."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from portal.cpu_priority import lower_priority

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/autogroup").exists(), reason="this kernel has no autogroups (CONFIG_SCHED_AUTOGROUP)"
)

CHILD = (
    "import os, sys; from portal.cpu_priority import lower_priority; "
    "print(lower_priority(int(sys.argv[1]))); print(os.getpriority(os.PRIO_PROCESS, 0)); "
    "print(open('/proc/self/autogroup').read().strip())"
)


def _child(nice: int, *, own_session: bool) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(nice)],
        capture_output=True, text=True, check=True, start_new_session=own_session,
        cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    return done.stdout.splitlines()


def test_a_session_leader_lowers_its_session_group_too():
    lowered, nice, group = _child(7, own_session=True)
    assert lowered == "process and session group"
    assert int(nice) >= 7
    assert group.endswith("nice 7")


def test_a_process_sharing_its_session_leaves_the_group_alone():
    before = Path("/proc/self/autogroup").read_text().strip()
    lowered, nice, group = _child(7, own_session=False)
    assert lowered == "process"
    assert int(nice) >= 7
    assert group == before  # the test runner's own group: not made nice


def test_a_group_already_nicer_is_not_raised(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "nice", lambda n: 0)
    monkeypatch.setattr(os, "getsid", lambda pid: os.getpid())
    group = tmp_path / "autogroup"
    group.write_text("/autogroup-9 nice 15\n")
    assert lower_priority(5, autogroup=group) == "process"
    assert group.read_text() == "/autogroup-9 nice 15\n"
    group.write_text("/autogroup-9 nice 0\n")
    assert lower_priority(5, autogroup=group) == "process and session group"
    assert group.read_text() == "5"


def test_zero_lowers_nothing(monkeypatch):
    monkeypatch.setattr(os, "nice", lambda n: pytest.fail("os.nice called"))
    assert lower_priority(0) == "nothing"


def test_the_asr_cluster_command_lowers_its_priority_by_asr_nice(monkeypatch, settings):
    from portal.management.commands import qcluster

    lowered = []

    class NoCluster:
        failed = False

        def __init__(self, **kwargs):
            pass

        def run(self, run_once=False):
            pass

    monkeypatch.setattr(qcluster, "lower_priority", lowered.append)
    monkeypatch.setattr(qcluster, "BoundedStopCluster", NoCluster)
    monkeypatch.setattr(qcluster, "_keep_connections", lambda: None)
    monkeypatch.setattr(qcluster.settings, "Q_WORKER_WARMUP", {})
    settings.ASR_NICE = 7
    monkeypatch.setenv("Q_CLUSTER_NAME", "default")
    qcluster.Command().handle(run_once=True)
    assert lowered == []  # the default cluster (webhooks, sweeper) keeps the web's priority
    monkeypatch.setenv("Q_CLUSTER_NAME", "asr")
    qcluster.Command().handle(run_once=True)
    assert lowered == [7]
