"""Independent clients instead of a closed loop: jobs arrive at random (Poisson) at a set rate, each from a
client of its own that submits, then long-polls until its job is done, as unrelated callers of a service do.

bench/concurrency.py's 20 clients each send their next job the moment the last one ends: clients whose jobs
ended in one batch come back together, and the submits of such a cohort wait for each other (issue 13).
Here nobody waits for anybody: the submit latency at a given load without that coupling. Redis broker and a
fresh PostgreSQL database, as deployed, two ASR workers, the tiny model unless --model says otherwise.
Printed per rate: the rate reached, submit and submit-to-done latency, the most jobs in flight, box busy.

    .venv/bin/python bench/open_loop.py [--rates 40,80] [--seconds 20] [--model PATH]
"""

from __future__ import annotations

import argparse
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests
from concurrency import CLIP_S, box_busy, busy_share
from harness import FIXTURE_MODEL, FreshPostgres, Stack, fixture_speech, pct, summary, variant


def run_rate(stack: Stack, clip, rate: float, seconds: float, offset: int) -> dict:
    submits: list[float] = []
    done: list[float] = []
    in_flight = [0, 0]  # now, most
    lock = threading.Lock()
    local = threading.local()

    def job(i: int) -> None:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        with lock:
            in_flight[0] += 1
            in_flight[1] = max(in_flight)
        try:
            started = time.perf_counter()
            submitted, ms = stack.submit(session, variant(clip, offset + i))
            body = stack.wait(session, submitted["id"])
            assert body["status"] == "succeeded", body
            submits.append(ms)
            done.append((time.perf_counter() - started) * 1000)
        finally:
            with lock:
                in_flight[0] -= 1

    arrivals = random.Random(rate)  # the same arrival times on every run at this rate
    busy0 = box_busy()
    with ThreadPoolExecutor(max_workers=256) as pool:
        futures = []
        started = time.perf_counter()
        at = 0.0
        while at < seconds:
            delay = started + at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(job, len(futures)))
            at += arrivals.expovariate(rate)
        for future in futures:
            future.result()
        wall = time.perf_counter() - started
    return {"rate": len(futures) / wall, "submit": submits, "done": done, "most": in_flight[1],
            "busy": busy_share(busy0, box_busy())}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rates", default="40,80", help="jobs per second, comma-separated")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--model", default=str(FIXTURE_MODEL))
    args = parser.parse_args()
    clip = fixture_speech(CLIP_S)
    database = FreshPostgres()
    try:
        stack = Stack(broker="redis", asr_workers=2, database_url=database.url, model=args.model)
        try:
            stack.warm_up(variant(clip, 950))
            print(f"== independent clients, Poisson arrivals, {CLIP_S} s clip, {args.seconds:.0f} s per rate ==")
            for k, rate in enumerate(float(r) for r in args.rates.split(",")):
                result = run_rate(stack, clip, rate, args.seconds, offset=(k + 1) * 100_000)
                print(f"{result['rate']:6.1f} jobs/s arrived (asked {rate:.0f}), at most {result['most']} in flight, "
                      f"box busy {result['busy']:.0%}")  # fmt: skip
                print(f"  submit        : {summary(result['submit'])}")
                print(f"  submit->done  : {summary(result['done'])}")
                print(f"  submit p95 {pct(result['submit'], 95):.1f} ms (target for 20 closed-loop clients: <= 50)",
                      flush=True)  # fmt: skip
        finally:
            stack.stop()
    finally:
        database.drop()


if __name__ == "__main__":
    main()
