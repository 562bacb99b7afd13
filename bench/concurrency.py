"""20 concurrent clients against Tingxie and against the peer (funasr's own `funasr-server`) with the same model
on the same cores, in one run: the tiny fixture model and a full-size SenseVoiceSmall (random weights, the real
dimensions: `build_test_model --full`, built once under var/bench-models/).

Targets: throughput >= 1.0x the peer's with the tiny model and >= 1.5x with the full-size one; submit p95 <= 50 ms;
health and status never wait behind the model. Printed with them: the batch sizes the ASR workers reached and
the CPU per job by part (web, broker, worker, model), with cross-job batching off (before) and on (after), and
how busy the whole box was; "batching on, ASR_NICE=10, N web" runs the ASR cluster nicer than the web tier and a
web process per core, as a host that runs both and nothing else would (README: ASR_NICE). Each configuration runs
through the Tingxie API (submit, then a long-poll GET: two requests per job) and through the OpenAI-compatible
endpoint, the same single request the peer answers. Submit p95 is printed over all submits and "steady" (without
each client's first, which all clients send at once). The peer runs before and after our configurations: the
ratios are to the mean of its two runs.

    .venv/bin/python bench/concurrency.py [--models tiny,full] [--clients 20] [--per-client 25] [--full-per-client 5]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import threading
import time

import requests
from cpu import delta, server_cpu, session_cpu
from harness import FIXTURE_MODEL, PY, ROOT, FreshPostgres, Peer, Stack, fixture_speech, pct, summary, variant

CLIP_S = 1.7
FULL_MODEL = ROOT / "var" / "bench-models" / "sensevoice_full"
TARGET = {"tiny": 1.0, "full": 1.5}
BATCH_OFF = {"ASR_BATCH_MAX_JOBS_CPU": "1", "ASR_BATCH_MAX_JOBS_CUDA": "1"}
# A host that runs the web tier and the ASR cluster side by side and nothing else (README: ASR_NICE, WEB_WORKERS):
# the cluster nicer than the web, and a web process per core (the model takes the CPU the web leaves).
WEB_FIRST_WORKERS = os.cpu_count() or 1
WEB_FIRST_LABEL = f"redis+postgres, batching on, ASR_NICE=10, {WEB_FIRST_WORKERS} web"
# (label, broker, PostgreSQL?, ASR worker environment, web processes: None = BENCH_WEB_WORKERS or 1); the first
# is "before" (one transcription per model call).
# Each runs twice: through the Tingxie API (submit, then long-poll GET: two requests per job) and through the
# OpenAI-compatible endpoint, the very request the peer gets (one POST that answers with the transcript).
WEB_FIRST_CONFIG = (WEB_FIRST_LABEL, "redis", True, {"ASR_NICE": "10"}, WEB_FIRST_WORKERS)
CONFIGS = {
    "tiny": [
        ("redis+postgres, batching off", "redis", True, BATCH_OFF, None),
        ("redis+postgres, batching on", "redis", True, {}, None),
        WEB_FIRST_CONFIG,
        ("orm+sqlite, batching on", "orm", False, {}, None),
    ],
    "full": [
        ("redis+postgres, batching off", "redis", True, BATCH_OFF, None),
        ("redis+postgres, batching on", "redis", True, {}, None),
        WEB_FIRST_CONFIG,
    ],
}
APIS = ("tingxie", "openai")
BATCH_LINE = re.compile(r"\[(\d+)\].*ASR batch: (\d+) transcriptions, (\d+) speech pieces.*\(([\d.]+) ms CPU\)")
WORKER_LINE = re.compile(r"ready for work at (\d+)")


def model_dir(name: str):
    if name == "tiny":
        return FIXTURE_MODEL
    if not (FULL_MODEL / "model.pt").exists():
        print(f"(building the full-size SenseVoiceSmall with random weights in {FULL_MODEL}, ~1 min)", flush=True)
        subprocess.run([PY, "manage.py", "build_test_model", str(FULL_MODEL), "--full"], cwd=ROOT, check=True)
    return FULL_MODEL


def probe_loop(url: str, stop: threading.Event, out: list[float], headers: dict | None = None) -> None:
    s = requests.Session()
    while not stop.is_set():
        t0 = time.perf_counter()
        s.get(url, headers=headers or {}, timeout=120)
        out.append((time.perf_counter() - t0) * 1000)
        time.sleep(0.05)


def run_clients(work, clients: int, per_client: int) -> float:
    barrier = threading.Barrier(clients)
    errors: list[Exception] = []

    def client(c: int) -> None:
        s = requests.Session()
        barrier.wait()
        for r in range(per_client):
            try:
                work(s, c * per_client + r)
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"{len(errors)} errors, first: {errors[0]!r}")
    return time.perf_counter() - t0


def bench_peer(clip, model, clients: int, per_client: int) -> dict:
    peer = Peer(model)
    try:
        s = requests.Session()
        for i in range(3):
            peer.transcribe(s, variant(clip, 900 + i))
        latencies: list[float] = []
        health: list[float] = []
        stop = threading.Event()
        prober = threading.Thread(target=probe_loop, args=(f"{peer.url}/health", stop, health))
        before, box0 = session_cpu(peer.pid), box_busy()
        prober.start()
        wall = run_clients(
            lambda sess, i: latencies.append(peer.transcribe(sess, variant(clip, i))), clients, per_client
        )
        stop.set()
        prober.join()
        n = clients * per_client
        cpu_ms = sum(delta(before, session_cpu(peer.pid)).values()) * 1000 / n
        return {"rps": n / wall, "latency": latencies, "health": health, "cpu_ms": cpu_ms,
                "busy": busy_share(box0, box_busy())}  # fmt: skip
    finally:
        peer.stop()


def cpu_parts(stack: Stack, web0: dict, asr0: dict, db0: float, log_from: int, n: int) -> tuple[dict, list[int]]:
    """CPU ms per job by part, and the batch sizes, from /proc and the ASR worker's log lines of the phase. The
    database part: the whole local PostgreSQL server's CPU (0 on SQLite, whose work is the web's and workers')."""
    web = sum(delta(web0, session_cpu(stack.procs[0].pid)).values())
    asr_delta = delta(asr0, session_cpu(stack.procs[1].pid))
    log = stack.log_of("asr")
    workers = {int(p) for p in WORKER_LINE.findall(log)}
    lines = BATCH_LINE.findall(log[log_from:])
    model = sum(float(cpu) for *_, cpu in lines) / 1000
    worker = sum(cpu for pid, cpu in asr_delta.items() if pid in workers)
    broker = sum(cpu for pid, cpu in asr_delta.items() if pid not in workers)
    database = server_cpu() - db0 if stack.env["DATABASE_URL"].startswith("postgres") else 0.0
    parts = {"web": web, "broker": broker, "worker": worker - model, "model": model, "database": database}
    return {k: v * 1000 / n for k, v in parts.items()}, [int(jobs) for _pid, jobs, _pieces, _cpu in lines]


def box_busy() -> tuple[int, int]:
    """(all, idle) jiffies of the whole box, from /proc/stat."""
    fields = [int(v) for v in open("/proc/stat").readline().split()[1:]]  # noqa: SIM115
    return sum(fields), fields[3] + fields[4]


def busy_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    total = after[0] - before[0]
    return 1 - (after[1] - before[1]) / total if total else 0.0


def bench_ours(clip, model, broker, database_url, asr_env: dict, web_workers, clients: int, per_client: int):
    """One stack, two phases: the Tingxie API (submit + long-poll) and the OpenAI endpoint (the peer's request)."""
    # ASR_NICE 0 unless BENCH_ASR_NICE says otherwise: the peer runs at normal priority too, and on a box busy
    # with other work a nice ASR cluster would starve.
    nice = os.environ.get("BENCH_ASR_NICE", "0")
    stack = Stack(broker=broker, asr_workers=2, database_url=database_url, model=model, web_workers=web_workers,
                  asr_env={"LOG_LEVEL": "INFO", "ASR_NICE": nice, **asr_env})  # fmt: skip
    try:
        stack.warm_up(variant(clip, 950))
        # A job id that stays known: a status read while the model works.
        probe_job, _ = stack.submit(requests.Session(), variant(clip, 999_999))
        stack.wait(requests.Session(), probe_job["id"])
        return {api: _phase(stack, api, clip, probe_job["id"], clients, per_client, offset=k * 100_000)
                for k, api in enumerate(APIS)}  # fmt: skip
    finally:
        stack.stop()


def _phase(stack: Stack, api: str, clip, probe_id: str, clients: int, per_client: int, *, offset: int) -> dict:
    submits: list[tuple[int, float]] = []  # (the client's request number, ms)
    done: list[float] = []
    health: list[float] = []
    status: list[float] = []

    def work(sess, i):
        t0 = time.perf_counter()
        if api == "openai":
            r = sess.post(f"{stack.url}/v1/audio/transcriptions", headers=stack.headers,
                          files={"file": ("a.wav", variant(clip, offset + i), "audio/wav")},
                          data={"model": "whisper-1"}, timeout=120)  # fmt: skip
            r.raise_for_status()
        else:
            job, ms = stack.submit(sess, variant(clip, offset + i))
            submits.append((i % per_client, ms))
            body = stack.wait(sess, job["id"])
            assert body["status"] == "succeeded", body
        done.append((time.perf_counter() - t0) * 1000)

    stop = threading.Event()
    probers = [
        threading.Thread(target=probe_loop, args=(f"{stack.url}/healthz", stop, health)),
        threading.Thread(target=probe_loop, args=(f"{stack.url}/api/v1/transcriptions/{probe_id}", stop, status, stack.headers)),
    ]  # fmt: skip
    web0, asr0, box0 = session_cpu(stack.procs[0].pid), session_cpu(stack.procs[1].pid), box_busy()
    db0 = server_cpu()
    log_from = len(stack.log_of("asr"))
    for p in probers:
        p.start()
    wall = run_clients(work, clients, per_client)
    stop.set()
    for p in probers:
        p.join()
    n = clients * per_client
    parts, sizes = cpu_parts(stack, web0, asr0, db0, log_from, n)
    return {"rps": n / wall, "submit": [ms for _r, ms in submits], "submit_steady": [ms for r, ms in submits if r],
            "latency": done, "health": health, "status": status, "cpu": parts, "batches": sizes,
            "busy": busy_share(box0, box_busy())}  # fmt: skip


def report(name: str, label: str, api: str, ours: dict, peer: dict) -> None:
    ratio = ours["rps"] / peer["rps"]
    sizes = ours["batches"] or [0]
    how = "submit + long-poll GET" if api == "tingxie" else "POST /v1/audio/transcriptions, as the peer"
    print(f"-- {name} model, {label}, {api} API ({how}) --")
    print(f"tingxie submit->done : {ours['rps']:6.1f} jobs/s  {summary(ours['latency'])}   box busy {ours['busy']:.0%}")
    if ours["submit"]:
        print(f"tingxie submit       : {summary(ours['submit'])}")
        print(f"tingxie submit steady: {summary(ours['submit_steady'])}   (each client's first submit, sent at "
              "once by all clients at the barrier, left out)")  # fmt: skip
    print(f"tingxie /healthz     : {summary(ours['health'])}")
    print(f"tingxie GET job      : {summary(ours['status'])}")
    print(f"batches: {len(ours['batches'])} model rounds, transcriptions per round median {statistics.median(sizes):.0f} "
          f"mean {statistics.mean(sizes):.1f} max {max(sizes)}")  # fmt: skip
    c = ours["cpu"]
    print(f"CPU per job (ms): web {c['web']:.1f}  broker {c['broker']:.1f}  worker {c['worker']:.1f}  "
          f"model {c['model']:.1f}  database {c['database']:.1f}  = {sum(c.values()):.1f}   "
          f"(peer: {peer['cpu_ms']:.1f} per request)")  # fmt: skip
    target = TARGET[name]
    tag = f"[{name}, {label}, {api} API]"
    print(f"TARGET {tag} throughput ratio vs peer: {ratio:.2f} (>= {target:.2f} -> "
          f"{'MET' if ratio >= target else 'MISSED'})")  # fmt: skip
    if ours["submit"]:
        p95, steady = pct(ours["submit"], 95), pct(ours["submit_steady"], 95)
        print(f"TARGET {tag} submit p95: {p95:.1f} ms, steady {steady:.1f} ms (<= 50 -> "
              f"{'MET' if p95 <= 50 else 'MET steady' if steady <= 50 else 'MISSED'})")  # fmt: skip
    print(f"TARGET {tag} health p95 ours vs peer: {pct(ours['health'], 95):.1f} ms vs "
          f"{pct(peer['health'], 95):.1f} ms; GET job p95 {pct(ours['status'], 95):.1f} ms")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="tiny,full")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--per-client", type=int, default=25, help="requests per client with the tiny model")
    parser.add_argument(
        "--full-per-client",
        type=int,
        default=5,
        help="requests per client with the full-size model (5: 80 steady submits, whose p95 is not one sample)",
    )
    parser.add_argument("--configs", default="", help="semicolon-separated labels to run (default: all)")
    args = parser.parse_args()
    clip = fixture_speech(CLIP_S)
    for name in args.models.split(","):
        model = model_dir(name)
        per_client = args.full_per_client if name == "full" else args.per_client
        print(f"\n== {name} model: {args.clients} concurrent clients x {per_client} requests, {CLIP_S} s clip, "
              "same cores ==", flush=True)  # fmt: skip
        # The peer runs before and after our configurations; the ratios use the mean of its two runs (it moves by
        # 10-20% between runs on a shared box, and the box may drift during ours).
        peer_runs = [bench_peer(clip, model, args.clients, per_client)]
        _print_peer("before", peer_runs[0])
        results = []
        for label, broker, postgres, asr_env, web_workers in CONFIGS[name]:
            if args.configs and label not in args.configs.split(";"):
                continue
            database = FreshPostgres() if postgres else None
            try:
                ours = bench_ours(clip, model, broker, database.url if database else None, asr_env, web_workers,
                                  args.clients, per_client)  # fmt: skip
            finally:
                if database:
                    database.drop()
            results.append((label, ours))
        peer_runs.append(bench_peer(clip, model, args.clients, per_client))
        _print_peer("after", peer_runs[1])
        peer = _mean_peer(peer_runs)
        print(f"peer (mean of both)  : {peer['rps']:6.1f} req/s   {peer['cpu_ms']:.1f} ms CPU per request", flush=True)
        for label, ours in results:
            for api, result in ours.items():
                report(name, label, api, result, peer)


def _print_peer(when: str, peer: dict) -> None:
    print(f"peer funasr-server, {when} ours: {peer['rps']:6.1f} req/s   {summary(peer['latency'])}   "
          f"box busy {peer['busy']:.0%}   {peer['cpu_ms']:.1f} ms CPU per request")  # fmt: skip
    print(f"peer /health         : {summary(peer['health'])}", flush=True)


def _mean_peer(runs: list[dict]) -> dict:
    return {"rps": statistics.mean(r["rps"] for r in runs), "cpu_ms": statistics.mean(r["cpu_ms"] for r in runs),
            "latency": [v for r in runs for v in r["latency"]], "health": [v for r in runs for v in r["health"]],
            "busy": statistics.mean(r["busy"] for r in runs)}  # fmt: skip


if __name__ == "__main__":
    main()
