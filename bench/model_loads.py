"""Exactly one model load per worker process, however many jobs: 20 jobs through a 2-process ASR
cluster; count 'Loaded ASR model' log lines per worker pid."""

from __future__ import annotations

import re
from collections import Counter

import requests
from harness import Stack, fixture_speech, variant

JOBS = 20


def main() -> None:
    stack = Stack(asr_workers=2, log_level="INFO")
    try:
        clip = fixture_speech(2.0)
        session = requests.Session()
        ids = [stack.submit(session, variant(clip, i))[0]["id"] for i in range(JOBS)]
        done = [stack.wait(session, job_id)["status"] for job_id in ids]
        log = stack.worker_log()
    finally:
        stack.stop()
    loads = re.findall(r"\[(\d+)\] \S+ (Loaded ASR model .*)", log)
    per_pid = Counter(pid for pid, _ in loads)
    print(f"== Model loads over {JOBS} jobs (2 ASR worker processes) ==")
    print(f"jobs succeeded: {done.count('succeeded')}/{JOBS}")
    print(f"model loads: {len(loads)} in {len(per_pid)} worker processes")
    for pid, line in loads:
        print(f"   pid {pid}: {line[:110]}")
    worst = max(per_pid.values(), default=0)
    print(f"TARGET exactly one load per worker process: max loads in one process = {worst} -> "
          f"{'MET' if worst == 1 else 'MISSED'}")  # fmt: skip


if __name__ == "__main__":
    main()
