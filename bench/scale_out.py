"""Drain rate as ASR capacity is added: 1 worker process, 2 worker processes in one cluster, 2 clusters.

One web server, one database (PostgreSQL when BENCH_POSTGRES_URL's server is reachable, else SQLite), the
Redis broker (BENCH_REDIS_URL) and one S3 bucket (BENCH_STORAGE_URL, else a local moto server); every cluster
gets an empty MEDIA_ROOT of its own, as a separate machine would. For each shape, the clusters start and warm
up (their model loads at start), then JOBS distinct clips are submitted at once and the drain rate is the jobs
divided by the time from the first submission to the last job's finish. Ratios are against 1 worker, in this
one run. On a box with fewer cores than worker processes the curve flattens: that is the measurement.

    .venv/bin/python bench/scale_out.py            # JOBS=60 SECONDS=4 by default
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import PY, ROOT, FreshPostgres, Stack, fixture_speech, variant  # noqa: E402

JOBS = int(os.environ.get("JOBS", "60"))
SECONDS = float(os.environ.get("SECONDS", "4"))
SHAPES = [("1 cluster x 1 worker", [1]), ("1 cluster x 2 workers", [2]), ("2 clusters x 1 worker", [1, 1])]


def _bucket() -> tuple[str, object | None]:
    if os.environ.get("BENCH_STORAGE_URL"):
        return os.environ["BENCH_STORAGE_URL"], None
    from tests.fakes.s3_server import S3Server

    server = S3Server(Path(tempfile.gettempdir()))
    return server.storage_url(server.new_bucket()), server


def _start_cluster(stack: Stack, workers: int, media: Path) -> tuple[subprocess.Popen, Path]:
    media.mkdir(parents=True)
    log = media.parent / f"{media.name}.log"
    proc = subprocess.Popen(
        [PY, "manage.py", "qcluster"], cwd=ROOT, stdout=open(log, "wb"), stderr=subprocess.STDOUT,  # noqa: SIM115
        env={**stack.env, "Q_CLUSTER_NAME": "asr", "ASR_WORKERS": str(workers), "MEDIA_ROOT": str(media),
             "LOG_LEVEL": "INFO", "ASR_WARM_START": "true"},
        start_new_session=True,
    )  # fmt: skip
    return proc, log


def _stop(proc: subprocess.Popen) -> None:
    import signal

    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _drain(stack: Stack, clips: list[bytes]) -> float:
    """Submit every clip at once; jobs per second from the first submission to the last finish."""
    session = requests.Session()
    started = datetime.now().astimezone()
    with ThreadPoolExecutor(8) as pool:
        ids = [job["id"] for job, _ in pool.map(lambda clip: stack.submit(requests.Session(), clip), clips)]
    finished = []
    for job_id in ids:
        body = stack.wait(session, job_id, timeout=900)
        if body["status"] != "succeeded":
            raise RuntimeError(f"job {job_id} {body['status']}: {body.get('error')}")
        finished.append(datetime.fromisoformat(body["finished_at"].replace("Z", "+00:00")))
    return len(ids) / (max(finished) - started).total_seconds()


def main() -> None:
    storage_url, s3 = _bucket()
    postgres = FreshPostgres()
    os.environ["STORAGE_URL"] = storage_url  # the Stack's web server stores into the bucket
    stack = Stack(broker="redis", database_url=postgres.url, asr=False)
    speech = fixture_speech(SECONDS)
    offset = 0
    results = []
    try:
        for label, shape in SHAPES:
            machines = Path(stack.tmp.name) / f"shape-{len(results)}"
            clusters = [_start_cluster(stack, workers, machines / f"cluster{i}") for i, workers in enumerate(shape)]
            try:
                for proc, log in clusters:
                    deadline = time.monotonic() + 600
                    while "taking tasks" not in log.read_text(errors="replace"):
                        if proc.poll() is not None or time.monotonic() > deadline:
                            raise RuntimeError(f"{label}: a cluster did not start:\n{log.read_text()[-2000:]}")
                        time.sleep(0.5)
                clips = [variant(speech, offset + i) for i in range(JOBS)]
                offset += JOBS
                rate = _drain(stack, clips)
            finally:
                for proc, _ in clusters:
                    _stop(proc)
            results.append((label, sum(shape), rate))
            print(f"{label:24s} {rate:6.2f} jobs/s", flush=True)
    finally:
        stack.stop()
        postgres.drop()
        if s3 is not None:
            s3.stop()
    base = results[0][2]
    print(f"\nScale-out ({JOBS} jobs of {SECONDS:.0f} s speech each, fixture model, {os.cpu_count()} CPUs, this run):")
    for label, processes, rate in results:
        print(f"  {label:24s} {rate:6.2f} jobs/s  x{rate / base:4.2f} of 1 worker  ({processes} process(es))")


if __name__ == "__main__":
    main()
