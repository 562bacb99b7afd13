"""Long-polls do not starve the web tier: with the ASR cluster stopped, 300 clients wait on queued jobs
(GET /api/v1/transcriptions/{id}?wait=30, re-issued as soon as it answers) while /healthz is probed every
50 ms. Target: /healthz p95 <= 100 ms. Also printed: the web process's threads while they wait, and how
soon a waiting client hears that its job ended (jobs canceled one by one; target <= 250 ms).

The clients start evenly over one wait period, as independent clients would be spread, and /healthz is
probed once all of them wait (300 requests fired at the same instant are a different test: a burst).

Options: --clients N (default 300), --wait S (default 30), --seconds S (probe time, default 20),
--wake N (jobs canceled to time the wake-up, default 20), --url URL --key KEY to measure a server already
running (jobs are submitted there and left queued, but for those canceled).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import threading
import time
from pathlib import Path

import httpx
import requests
from harness import Stack, fixture_speech, pct, summary, variant

PROBE_EVERY_S = 0.05


def submit_jobs(url: str, key: str, n: int) -> list[str]:
    """n queued jobs (distinct audio: no cache hits), submitted by 8 threads."""
    clip = fixture_speech(1.0)
    ids: list[str | None] = [None] * n

    def work(start: int) -> None:
        s = requests.Session()
        for i in range(start, n, 8):
            r = s.post(f"{url}/api/v1/transcriptions", headers={"Authorization": f"Bearer {key}"},
                       files={"file": ("a.wav", variant(clip, i), "audio/wav")}, timeout=60)  # fmt: skip
            r.raise_for_status()
            ids[i] = r.json()["id"]

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if None in ids:
        raise RuntimeError("some submissions failed")
    return ids  # type: ignore[return-value]


def probe(url: str, stop: threading.Event, out: list[float], errors: list[str]) -> None:
    s = requests.Session()
    while not stop.is_set():
        t0 = time.perf_counter()
        try:
            s.get(f"{url}/healthz", timeout=60).raise_for_status()
        except requests.RequestException as exc:
            errors.append(repr(exc))
        out.append((time.perf_counter() - t0) * 1000)
        time.sleep(PROBE_EVERY_S)


def threads_of(pid: int | None) -> str:
    if pid is None:
        return "n/a"
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return line.split()[1]
    return "n/a"


async def run(
    url: str, key: str, ids: list[str], *, wait_s: float, seconds: float, wake_n: int, web_pid: int | None
) -> dict:
    headers = {"Authorization": f"Bearer {key}"}
    in_flight = 0
    ended: dict[str, float] = {}  # job id -> when its long-poll answered with a final status
    errors: list[str] = []
    stop = asyncio.Event()

    async def client(http: httpx.AsyncClient, job_id: str, delay: float) -> None:
        nonlocal in_flight
        await asyncio.sleep(delay)
        while not stop.is_set():
            in_flight += 1
            try:
                r = await http.get(f"{url}/api/v1/transcriptions/{job_id}", params={"wait": wait_s}, headers=headers)
                body = r.json()
            except (httpx.HTTPError, ValueError) as exc:
                errors.append(repr(exc))
                await asyncio.sleep(0.5)
                continue
            finally:
                in_flight -= 1
            if body.get("status") in ("succeeded", "failed", "canceled"):
                ended[job_id] = time.perf_counter()
                return

    limits = httpx.Limits(max_connections=len(ids) + 10, max_keepalive_connections=len(ids) + 10)
    async with httpx.AsyncClient(limits=limits, timeout=wait_s + 30) as http:
        spread = wait_s / len(ids)
        tasks = [asyncio.create_task(client(http, job_id, i * spread)) for i, job_id in enumerate(ids)]
        await asyncio.sleep(wait_s + 1.0)  # every client started, the first ones already asked again
        waiting = in_flight
        health: list[float] = []
        health_errors: list[str] = []
        halt = threading.Event()
        prober = threading.Thread(target=probe, args=(url, halt, health, health_errors))
        prober.start()
        await asyncio.sleep(seconds / 2)
        threads = threads_of(web_pid)
        await asyncio.sleep(seconds / 2)
        halt.set()
        await asyncio.to_thread(prober.join)

        # Wake-up: cancel some waited-for jobs one by one; how long until each long-poll answers?
        wake: list[float] = []
        for job_id in ids[:wake_n]:
            r = await http.post(f"{url}/api/v1/transcriptions/{job_id}/cancel", headers=headers)
            r.raise_for_status()
            done_at = time.perf_counter()
            for _ in range(200):
                if job_id in ended:
                    break
                await asyncio.sleep(0.005)
            if job_id in ended:
                wake.append(max(0.0, (ended[job_id] - done_at) * 1000))
        stop.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "waiting": waiting,
        "health": health,
        "health_errors": health_errors,
        "threads": threads,
        "wake": wake,
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=300)
    parser.add_argument("--wait", type=float, default=30)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--wake", type=int, default=20, help="jobs canceled to time the wake-up (0: none)")
    parser.add_argument("--url", help="a running server (default: start uvicorn on a fresh database)")
    parser.add_argument("--key", help="an API key of that server, with tokens")
    args = parser.parse_args()

    stack = None
    if args.url:
        url, key, web_pid = args.url.rstrip("/"), args.key, None
    else:
        stack = Stack(asr=False)  # the ASR cluster stays stopped: every job stays queued
        url, key, web_pid = stack.url, stack.key, stack.web_pid
    try:
        ids = submit_jobs(url, key, args.clients)
        out = asyncio.run(run(url, key, ids, wait_s=args.wait, seconds=args.seconds, wake_n=args.wake, web_pid=web_pid))
    finally:
        if stack:
            stack.stop()
    p95 = pct(out["health"], 95)
    print(f"== {args.clients} clients long-polling ?wait={args.wait:g} on queued jobs, ASR cluster stopped ==")
    print(f"long-polls in flight (client side): {out['waiting']}")
    print(f"web process threads while waiting: {out['threads']}")
    print(f"/healthz every {PROBE_EVERY_S * 1000:.0f} ms for {args.seconds:.0f} s: {summary(out['health'])}  "
          f"max {max(out['health']):.1f} ms  errors {len(out['health_errors'])}")  # fmt: skip
    if out["wake"]:
        print(f"job canceled -> its long-poll answers : median {statistics.median(out['wake']):.1f} ms  "
              f"max {max(out['wake']):.1f} ms  (n={len(out['wake'])})")  # fmt: skip
    if out["errors"]:
        print(f"client errors: {len(out['errors'])}, first: {out['errors'][0]}")
    print(
        f"TARGET /healthz p95 with {args.clients} long-polls: {p95:.1f} ms (<= 100 -> {'MET' if p95 <= 100 else 'MISSED'})"
    )
    if args.wake:
        wake_max = max(out["wake"]) if len(out["wake"]) == args.wake else float("inf")
        print(
            f"TARGET wake-up after the job ends: max {wake_max:.1f} ms (<= 250 -> {'MET' if wake_max <= 250 else 'MISSED'})"
        )


if __name__ == "__main__":
    main()
