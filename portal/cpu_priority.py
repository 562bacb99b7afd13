"""Run a process nicer than the web tier on a host they share (settings.ASR_NICE), so that it really yields.

os.nice ranks a process only among the processes of its own scheduling group. With Linux's autogroups on (the
default of most distributions' kernels), every session is such a group, and groups share the CPU equally
whatever the nice of their processes: an ASR cluster started in a session of its own (systemd, docker,
supervisord, `setsid`, a process manager's start_new_session) took its full share from the web with any
ASR_NICE (issue 13: the web process spent ~40 ms per job waiting for a CPU, as much with ASR_NICE=19 as
with 0). There the session's group is made nice as well. A process that shares its session with others
(`make run`, a shell) leaves the group alone: the web tier may be in it. In a cgroup with a CPU weight of its
own (a systemd unit with CPUWeight=, a container), the weight decides between cgroups and autogroups play no part:
the deployment gives the cluster a low weight there (README: ASR_NICE).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

AUTOGROUP = Path("/proc/self/autogroup")
_GROUP_NICE = re.compile(r"nice\s+(-?\d+)")


def lower_priority(nice: int, *, autogroup: Path = AUTOGROUP) -> str:
    """Make this process (and what it starts from now on) `nice` steps nicer. Returns what was lowered:
    "process and session group", "process" (it shares its session, or the kernel has no autogroups) or
    "nothing" (nice <= 0)."""
    if nice <= 0:
        return "nothing"
    os.nice(nice)
    if os.getsid(0) != os.getpid():
        return "process"
    try:
        current = _GROUP_NICE.search(autogroup.read_text())
        if current is None or int(current.group(1)) >= nice:
            return "process"
        autogroup.write_text(str(nice))
    except OSError:  # no autogroups (kernel built without them), or /proc not mounted: the process alone
        return "process"
    return "process and session group"
