"""Platform overhead per job = end-to-end (submit -> poll sees succeeded) minus engine time
(decode + VAD + ASR as measured inside the worker), sequential, 1 s and 60 s clips, ORM and Redis
brokers. Targets: <= 25 ms median with Redis, <= 150 ms with the ORM broker.

The ORM broker runs on the embedded defaults (SQLite); the Redis broker as deployed, with PostgreSQL (a fresh
database of the bench's own, see harness.FreshPostgres), whose NOTIFY wakes long-polls at once.
"""

from __future__ import annotations

import statistics

import requests
from harness import FreshPostgres, Stack, fixture_speech, pct, summary, variant

N = {1: 30, 60: 8}


def run(broker: str) -> dict:
    database = FreshPostgres() if broker == "redis" else None
    try:
        return _run(broker, database.url if database else None)
    finally:
        if database:
            database.drop()


def _run(broker: str, database_url: str | None) -> dict:
    stack = Stack(broker=broker, database_url=database_url)
    out = {}
    try:
        clips = {s: fixture_speech(s) for s in N}
        stack.warm_up(variant(clips[1], 999_000))
        session = requests.Session()
        for seconds, n in N.items():
            overheads, e2e, engine = [], [], []
            for i in range(n):
                job, t_submit = stack.submit(session, variant(clips[seconds], i + 1000 * seconds))
                import time

                t0 = time.perf_counter() - t_submit / 1000
                body = stack.wait(session, job["id"])
                total = (time.perf_counter() - t0) * 1000
                assert body["status"] == "succeeded", body
                t = body["timings_ms"]
                eng = (t["decode"] or 0) + (t["vad"] or 0) + (t["asr"] or 0)
                e2e.append(total)
                engine.append(eng)
                overheads.append(total - eng)
            out[seconds] = (overheads, e2e, engine)
            print(f"[{broker:5}] {seconds:>2} s clip  end-to-end {summary(e2e)}")
            print(f"[{broker:5}] {seconds:>2} s clip  engine     {summary(engine)}")
            print(f"[{broker:5}] {seconds:>2} s clip  OVERHEAD   {summary(overheads)}")
    finally:
        stack.stop()
    return out


def main() -> None:
    print("== Platform overhead per job (sequential; overhead = end-to-end - (decode + VAD + ASR)) ==")
    results = {b: run(b) for b in ("orm", "redis")}
    for broker, target in (("redis", 25.0), ("orm", 150.0)):
        med = statistics.median(results[broker][1][0])
        print(f"TARGET overhead median ({broker}, 1 s clip): {med:.1f} ms vs <= {target:.0f} ms -> "
              f"{'MET' if med <= target else 'MISSED'}; p95 {pct(results[broker][1][0], 95):.1f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
