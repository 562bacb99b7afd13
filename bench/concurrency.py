"""20 concurrent clients against Tingxie and against the peer (funasr's `funasr-server`) on the same
cores, in one run. Targets: throughput >= the peer's; submit p95 <= 50 ms; health and status never
wait behind the model."""

from __future__ import annotations

import threading
import time

import requests
from harness import FreshPostgres, Peer, Stack, fixture_speech, pct, summary, variant

CLIENTS, PER_CLIENT, CLIP_S = 20, 5, 1.7


def probe_loop(url: str, stop: threading.Event, out: list[float], headers: dict | None = None) -> None:
    s = requests.Session()
    while not stop.is_set():
        t0 = time.perf_counter()
        s.get(url, headers=headers or {}, timeout=60)
        out.append((time.perf_counter() - t0) * 1000)
        time.sleep(0.05)


def run_clients(work) -> float:
    barrier = threading.Barrier(CLIENTS)
    errors: list[Exception] = []

    def client(c: int) -> None:
        s = requests.Session()
        barrier.wait()
        for r in range(PER_CLIENT):
            try:
                work(s, c * PER_CLIENT + r)
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"{len(errors)} errors, first: {errors[0]!r}")
    return time.perf_counter() - t0


def bench_peer(clip) -> dict:
    peer = Peer()
    try:
        s = requests.Session()
        for i in range(3):
            peer.transcribe(s, variant(clip, 900 + i))
        latencies: list[float] = []
        health: list[float] = []
        stop = threading.Event()
        prober = threading.Thread(target=probe_loop, args=(f"{peer.url}/health", stop, health))
        prober.start()
        wall = run_clients(lambda sess, i: latencies.append(peer.transcribe(sess, variant(clip, i))))
        stop.set()
        prober.join()
        return {"rps": CLIENTS * PER_CLIENT / wall, "latency": latencies, "health": health}
    finally:
        peer.stop()


def bench_ours(clip, broker: str, database_url: str | None = None, *, openai: bool = False) -> dict:
    """openai=True: one request per job on /v1/audio/transcriptions (what the peer's clients do);
    otherwise submit + long-poll GET on the native API."""
    stack = Stack(broker=broker, asr_workers=2, database_url=database_url)
    try:
        stack.warm_up(variant(clip, 950))
        submits: list[float] = []
        done: list[float] = []
        health: list[float] = []
        status: list[float] = []

        def work(sess, i):
            t0 = time.perf_counter()
            if openai:
                r = sess.post(f"{stack.url}/v1/audio/transcriptions", headers=stack.headers,
                              files={"file": ("a.wav", variant(clip, i), "audio/wav")}, data={"model": "whisper-1"},
                              timeout=120)  # fmt: skip
                r.raise_for_status()
                done.append((time.perf_counter() - t0) * 1000)
                return
            job, ms = stack.submit(sess, variant(clip, i))
            submits.append(ms)
            body = stack.wait(sess, job["id"], interval=0.02)
            assert body["status"] == "succeeded", body
            done.append((time.perf_counter() - t0) * 1000)

        # A job id that stays known: a status read while the model works.
        probe_job, _ = stack.submit(requests.Session(), variant(clip, 999_999))
        stop = threading.Event()
        probers = [
            threading.Thread(target=probe_loop, args=(f"{stack.url}/healthz", stop, health)),
            threading.Thread(target=probe_loop, args=(f"{stack.url}/api/v1/transcriptions/{probe_job['id']}", stop, status, stack.headers)),
        ]  # fmt: skip
        for p in probers:
            p.start()
        wall = run_clients(work)
        stop.set()
        for p in probers:
            p.join()
        return {
            "rps": CLIENTS * PER_CLIENT / wall,
            "submit": submits,
            "latency": done,
            "health": health,
            "status": status,
        }
    finally:
        stack.stop()


def main() -> None:
    clip = fixture_speech(CLIP_S)
    print(f"== {CLIENTS} concurrent clients x {PER_CLIENT} requests, {CLIP_S} s clip, same 2 cores ==")
    peer = bench_peer(clip)
    print(f"peer funasr-server      : {peer['rps']:6.1f} req/s   latency {summary(peer['latency'])}")
    print(f"peer /health under load : {summary(peer['health'])}")
    for broker, postgres, openai in (("orm", False, False), ("orm", False, True), ("redis", True, False)):
        database = FreshPostgres() if postgres else None
        try:
            db = database.url if database else None
            ours = bench_ours(clip, broker, db, openai=openai)
        finally:
            if database:
                database.drop()
        label = f"{broker}+{'postgres' if db else 'sqlite'}" + (", OpenAI endpoint (1 request/job)" if openai else "")
        print(f"-- {label} --")
        print(f"tingxie [{broker:5}]        : {ours['rps']:6.1f} jobs/s  submit->done {summary(ours['latency'])}")
        if ours["submit"]:
            print(f"tingxie [{broker:5}] submit : {summary(ours['submit'])}")
        print(f"tingxie [{broker:5}] /healthz under load : {summary(ours['health'])}")
        print(f"tingxie [{broker:5}] GET job under load  : {summary(ours['status'])}")
        ratio = ours["rps"] / peer["rps"]
        print(
            f"TARGET [{broker}] throughput ratio vs peer: {ratio:.2f} (>= 1.00 -> {'MET' if ratio >= 1 else 'MISSED'})"
        )
        if ours["submit"]:
            p95 = pct(ours["submit"], 95)
            print(f"TARGET [{broker}] submit p95: {p95:.1f} ms (<= 50 -> {'MET' if p95 <= 50 else 'MISSED'})")
        print(
            f"TARGET [{broker}] health p95 ours vs peer: {pct(ours['health'], 95):.1f} ms vs {pct(peer['health'], 95):.1f} ms"
        )


if __name__ == "__main__":
    main()
