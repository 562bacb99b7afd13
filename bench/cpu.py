"""CPU seconds of process trees, from /proc (Linux): who spent what during a benchmark phase."""

from __future__ import annotations

import os
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _fields(pid: int) -> tuple[str, list[str]] | None:
    """A live process's name and its /proc/PID/stat fields after the name (state first)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.index("(") + 1 : raw.rindex(")")], raw[raw.rindex(")") + 2 :].split()


def _stat(pid: int) -> tuple[int, int, float] | None:
    """(parent pid, session id, CPU seconds) of a live process."""
    found = _fields(pid)
    if found is None:
        return None
    fields = found[1]
    return int(fields[1]), int(fields[3]), (int(fields[11]) + int(fields[12])) / TICK


def session_cpu(session: int) -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds) for every live process of a session (a bench-spawned process tree)."""
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st is not None and st[1] == session:
                out[int(entry)] = (st[0], st[2])
    return out


def title(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def delta(before: dict, after: dict) -> dict[int, float]:
    """CPU seconds each process spent between two samples (processes that started in between count fully)."""
    return {pid: cpu - before.get(pid, (0, 0.0))[1] for pid, (_parent, cpu) in after.items()}


def server_cpu(comm: str = "postgres") -> float:
    """CPU seconds of every process named `comm` on this machine: a local server (PostgreSQL's postmaster and its
    backends), with the backends that have exited since it started (their time is in their parent's cutime and
    cstime once reaped). The whole server: run it where nothing else uses that server."""
    total = 0.0
    for entry in os.listdir("/proc"):
        found = _fields(int(entry)) if entry.isdigit() else None
        if found is not None and found[0] == comm:
            total += sum(int(v) for v in found[1][11:15]) / TICK  # utime, stime, cutime, cstime
    return total
