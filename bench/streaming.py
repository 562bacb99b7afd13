"""Live streams: N clients stream a 17 s three-sentence clip in real time (60 ms frames, 2pass) to one stream
worker with the tiny models; first partial, end of speech -> final (target p95 <= 800 ms), CPU per stream; then
more clients until p95 passes 800 ms (the saturation point), and what admission control does past it.

    .venv/bin/python bench/streaming.py [--clients 20] [--sweep 20,40,60] [--max-sessions 60]

Everything runs in a temporary directory (SQLite, a tiny streaming Paraformer built with build_test_model),
on a free port (BENCH_STREAM_PORT to choose one). The peer (funasr's own runtime/python/websocket server) is
not started here: it needs a tiny FSMN-VAD and funasr's runtime scripts, which are not part of the package.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import FIXTURE_MODEL, PY, ROOT, free_port, pct  # noqa: E402

SR = 16000
FRAME = 960  # 60 ms
TARGET_MS = 800.0


def clip() -> tuple[np.ndarray, list[float]]:
    """0.5 s silence, then three fixture sentences each followed by 1.2 s of silence; true speech ends (s)."""
    from tests.audio_samples import speak_fixture

    parts, ends, pos = [np.zeros(SR // 2, dtype=np.float32)], [], SR // 2
    for sid in ("zh_park", "zh_welcome", "en_welcome"):
        speech = speak_fixture(sid)
        loud = np.nonzero(np.abs(speech) > 0.01)[0]
        ends.append((pos + (loud[-1] if loud.size else speech.shape[0])) / SR)
        parts += [speech, np.zeros(int(1.2 * SR), dtype=np.float32)]
        pos += speech.shape[0] + int(1.2 * SR)
    return np.concatenate(parts), ends


def manage(env: dict, *args: str) -> str:
    out = subprocess.run([PY, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    return out.stdout.strip()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def client(url: str, pcm: bytes, ends: list[float], stagger: float, out: dict) -> None:
    import websockets

    await asyncio.sleep(stagger)
    try:
        async with websockets.connect(url, subprotocols=["binary"], ping_interval=None, max_size=None) as ws:
            config = {"mode": "2pass", "chunk_size": [5, 10, 5], "chunk_interval": 10, "wav_name": "bench",
                      "audio_fs": 16000, "wav_format": "pcm", "is_speaking": True, "itn": True}  # fmt: skip
            await ws.send(json.dumps(config))
            t0 = time.monotonic()
            finals: list[float] = []

            async def listen():
                async for raw in ws:
                    message = json.loads(raw)
                    now = time.monotonic() - t0
                    if message.get("error"):
                        out["errors"].append(message["error"])
                    if message.get("mode") == "2pass-online" and message.get("text") and "first" not in out:
                        out["first"] = now - 0.5  # speech starts at 0.5 s
                    if message.get("mode") == "2pass-offline" and message.get("text"):
                        finals.append(now)
                    if message.get("is_end"):
                        return

            listener = asyncio.create_task(listen())
            step = FRAME * 2
            for i, beg in enumerate(range(0, len(pcm), step)):
                await asyncio.sleep(max(0.0, t0 + (i + 1) * 0.06 - time.monotonic()))
                await ws.send(pcm[beg : beg + step])
            await ws.send(json.dumps({"is_speaking": False, "is_end": True}))
            await asyncio.wait_for(listener, timeout=60)
            out["end_to_final"] = [(f - e) * 1000 for f, e in zip(finals, ends, strict=False)]
            out["finals"] = len(finals)
    except Exception as exc:  # noqa: BLE001  (a bench counts every failure)
        out["errors"].append(f"{type(exc).__name__}: {exc}")


async def run_clients(url: str, n: int, pcm: bytes, ends: list[float]) -> list[dict]:
    results = [{"errors": []} for _ in range(n)]
    await asyncio.gather(*(client(url, pcm, ends, random.uniform(0, 0.6), results[i]) for i in range(n)))
    return results


def one_run(url: str, pid: int, n: int, pcm: bytes, ends: list[float]) -> dict:
    cpu0, wall0 = cpu_seconds(pid), time.monotonic()
    results = asyncio.run(run_clients(url, n, pcm, ends))
    cpu = cpu_seconds(pid) - cpu0
    cores = cpu / (time.monotonic() - wall0)
    firsts = [r["first"] * 1000 for r in results if "first" in r]
    e2f = [v for r in results for v in r.get("end_to_final", [])]
    errors = [e for r in results for e in r["errors"]]
    return {
        "clients": n,
        "errors": len(errors),
        "refused_1013": sum("1013" in e for e in errors),
        "first_p50": float(np.median(firsts)) if firsts else float("nan"),
        "first_p95": pct(firsts, 95) if firsts else float("nan"),
        "final_p50": float(np.median(e2f)) if e2f else float("nan"),
        "final_p95": pct(e2f, 95) if e2f else float("nan"),
        "finals": sum(r.get("finals", 0) for r in results),
        "cores": cores,
        # CPU seconds per second of audio streamed: the cores one real-time stream needs, however busy the box
        "per_stream": cpu / (n * len(pcm) / (2 * SR)),
        "sample_error": errors[0] if errors else "",
    }


def show(row: dict) -> None:
    print(
        f"{row['clients']:4d} clients: errors {row['errors']:3d} (1013: {row['refused_1013']})  "
        f"first partial p50/p95 {row['first_p50']:6.0f}/{row['first_p95']:6.0f} ms  "
        f"end of speech -> final p50/p95 {row['final_p50']:6.0f}/{row['final_p95']:6.0f} ms  "
        f"finals {row['finals']}  server CPU {row['cores']:.2f} cores, {row['per_stream']:.3f} core per real-time stream",
        flush=True,
    )
    if row["sample_error"]:
        print(f"      e.g. {row['sample_error'][:160]}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--sweep", default="30,40,60")
    parser.add_argument("--max-sessions", type=int, default=60)
    parser.add_argument("--replicas", type=int, default=2)
    args = parser.parse_args()
    audio, ends = clip()
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    print(f"clip {audio.shape[0] / SR:.1f} s, speech ends at {', '.join(f'{e:.2f}' for e in ends)} s")
    print(f"load average before the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (others' work delays ours)")
    with tempfile.TemporaryDirectory(prefix="tingxie-bench-stream-") as tmp:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "portal.settings.local",
            "DJANGO_SECRET_KEY": "bench-" + "x" * 50,
            "DATABASE_URL": f"sqlite:///{tmp}/db.sqlite3",
            "MEDIA_ROOT": f"{tmp}/media",
            "ASR_MODEL": str(FIXTURE_MODEL),
            "STREAM_ONLINE_MODEL": f"{tmp}/paraformer_streaming",
            "STREAM_DEVICE": "cpu",
            "STREAM_REPLICAS": str(args.replicas),
            "STREAM_MAX_SESSIONS": str(args.max_sessions),
            "STREAM_MAX_SESSIONS_PER_KEY": "1000",
            "LOG_LEVEL": "WARNING",
        }
        manage(env, "build_test_model", f"{tmp}/paraformer_streaming", "--kind", "paraformer_streaming")
        manage(env, "migrate", "--noinput", "-v0")
        manage(env, "create_tenant", "bench")
        manage(env, "grant_tokens", "bench", "100000000", "--memo", "bench")
        key = manage(env, "create_api_key", "bench").splitlines()[-1]
        port = free_port("BENCH_STREAM_PORT")
        log = open(f"{tmp}/stream.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [PY, "manage.py", "stream", "--port", str(port)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 180
            while True:
                try:
                    if requests.get(f"http://127.0.0.1:{port}/", timeout=2).json()["status"] == "ok":
                        break
                except requests.RequestException:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    print(Path(f"{tmp}/stream.log").read_text()[-3000:])
                    return 1
                time.sleep(0.5)
            url = f"ws://127.0.0.1:{port}/?api_key={key}"
            one_run(url, proc.pid, 2, pcm, ends)  # warm-up
            print(f"\none stream worker, {args.replicas} replicas, STREAM_MAX_SESSIONS={args.max_sessions}:")
            main_row = one_run(url, proc.pid, args.clients, pcm, ends)
            show(main_row)
            verdict = "meets" if main_row["final_p95"] <= TARGET_MS else "misses"
            print(f"end of speech -> final p95 {main_row['final_p95']:.0f} ms {verdict} the {TARGET_MS:.0f} ms target")
            for n in [int(x) for x in args.sweep.split(",") if x]:
                row = one_run(url, proc.pid, n, pcm, ends)
                show(row)
                if row["final_p95"] > TARGET_MS or row["errors"]:
                    print(f"saturation: p95 passes {TARGET_MS:.0f} ms (or errors) at {n} clients")
                    break
        finally:
            proc.terminate()
            proc.wait(timeout=20)
            log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
