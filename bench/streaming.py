"""Live streams: N clients stream a 17 s three-sentence clip in real time (60 ms frames, 2pass) to one stream
worker with the tiny models; first partial, end of speech -> final (target p95 <= 800 ms), CPU per stream; then
more clients until p95 passes 800 ms (the saturation point); the same clients against the peer (funasr's own
runtime WebSocket server) in the same run, with the ratios; and what admission control does past saturation.

    .venv/bin/python bench/streaming.py [--clients 20] [--sweep 30,40,60] [--peer-server PATH]
        [--end-silence-ms 500] [--admission 20:40]

Everything runs in a temporary directory (SQLite, a tiny streaming Paraformer and FSMN-VAD built with
build_test_model), on free ports (BENCH_STREAM_PORT / BENCH_PEER_PORT to choose). The peer's script is not
part of Tingxie: without --peer-server / BENCH_PEER_WSS_SERVER the bench says how to fetch it and skips it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import FIXTURE_MODEL, PY, ROOT, free_port, pct  # noqa: E402
from bench.streaming_peer import HOW_TO_GET, describe, peer_script, start_peer, wait_listening  # noqa: E402

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


TAG = re.compile(r"<\|[^|]*\|>")


def has_words(text: str) -> bool:
    """Text beyond SenseVoice's tags (the peer keeps them; a tags-only final is not a sentence)."""
    return bool(TAG.sub("", text or "").strip())


async def client(url: str, pcm: bytes, ends: list[float], stagger: float, out: dict, *, peer: bool) -> None:
    import websockets

    await asyncio.sleep(stagger)
    try:
        async with websockets.connect(url, subprotocols=["binary"], ping_interval=None, max_size=None) as ws:
            config = {"mode": "2pass", "chunk_size": [5, 10, 5], "chunk_interval": 10, "wav_name": "bench",
                      "audio_fs": 16000, "wav_format": "pcm", "is_speaking": True, "itn": True}  # fmt: skip
            await ws.send(json.dumps(config))
            t0 = time.monotonic()
            finals: list[float] = []
            ended = asyncio.Event()

            async def listen():
                async for raw in ws:
                    message = json.loads(raw)
                    now = time.monotonic() - t0
                    if message.get("error"):
                        out["errors"].append(message["error"])
                    offline = message.get("mode") == "2pass-offline"
                    if message.get("mode") == "2pass-online" and message.get("text") and "first" not in out:
                        out["first"] = now - 0.5  # speech starts at 0.5 s
                    if offline and has_words(message.get("text", "")):
                        finals.append(now)
                    if message.get("is_end"):  # ours acknowledges the end
                        return
                    # the peer has no ack: its answer to is_speaking:false is the 2pass-offline after the last
                    # sentence (empty when the VAD already closed it), sent after every earlier result
                    if peer and ended.is_set() and offline and (not has_words(message["text"]) or len(finals) >= 3):
                        return

            listener = asyncio.create_task(listen())
            step = FRAME * 2
            for i, beg in enumerate(range(0, len(pcm), step)):
                await asyncio.sleep(max(0.0, t0 + (i + 1) * 0.06 - time.monotonic()))
                if listener.done():
                    break
                await ws.send(pcm[beg : beg + step])
            ended.set()
            if not listener.done():
                await ws.send(json.dumps({"is_speaking": False, "is_end": True}))
            await asyncio.wait_for(listener, timeout=60)
            out["end_to_final"] = [(f - e) * 1000 for f, e in zip(finals, ends, strict=False)]
            out["finals"] = len(finals)
    except Exception as exc:  # noqa: BLE001  (a bench counts every failure)
        out["errors"].append(f"{type(exc).__name__}: {exc}")


async def run_clients(url: str, n: int, pcm: bytes, ends: list[float], *, peer: bool) -> list[dict]:
    results = [{"errors": []} for _ in range(n)]
    staggers = [random.uniform(0, 0.6) for _ in range(n)]
    await asyncio.gather(*(client(url, pcm, ends, staggers[i], results[i], peer=peer) for i in range(n)))
    return results


def one_run(url: str, pid: int, n: int, pcm: bytes, ends: list[float], *, peer: bool = False) -> dict:
    cpu0, wall0 = cpu_seconds(pid), time.monotonic()
    results = asyncio.run(run_clients(url, n, pcm, ends, peer=peer))
    cpu = cpu_seconds(pid) - cpu0
    cores = cpu / (time.monotonic() - wall0)
    admitted = [r for r in results if not any("1013" in e for e in r["errors"])]
    firsts = [r["first"] * 1000 for r in admitted if "first" in r]
    e2f = [v for r in admitted for v in r.get("end_to_final", [])]
    errors = [e for r in results for e in r["errors"]]
    return {
        "server": "peer" if peer else "ours",
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
        "per_stream": cpu / (len(admitted) * len(pcm) / (2 * SR)) if admitted else float("nan"),
        "sample_error": errors[0] if errors else "",
    }


def show(row: dict) -> None:
    print(
        f"{row['server']:>4} {row['clients']:4d} clients: errors {row['errors']:3d} (1013: {row['refused_1013']})  "
        f"first partial p50/p95 {row['first_p50']:6.0f}/{row['first_p95']:6.0f} ms  "
        f"end of speech -> final p50/p95 {row['final_p50']:6.0f}/{row['final_p95']:6.0f} ms  "
        f"finals {row['finals']}  server CPU {row['cores']:.2f} cores, {row['per_stream']:.3f} core per real-time stream",
        flush=True,
    )
    if row["sample_error"]:
        print(f"      e.g. {row['sample_error'][:160]}")


def saturated(row: dict) -> bool:
    return row["final_p95"] > TARGET_MS or row["errors"] > 0 or row["final_p95"] != row["final_p95"]


def table(pairs: list[tuple[dict | None, dict | None]]) -> None:
    """One table: ours, the peer and ours/peer for each client count (below 1: ours is faster / cheaper)."""
    print("\nclients  server     errors  first partial p50/p95   end of speech -> final p50/p95   finals  core/stream")
    for ours, peer in pairs:
        for row in (ours, peer):
            if row is None:
                continue
            print(
                f"{row['clients']:7d}  {row['server']:<9} {row['errors']:6d}  {row['first_p50']:9.0f}/{row['first_p95']:<8.0f}"
                f"    {row['final_p50']:14.0f}/{row['final_p95']:<12.0f}    {row['finals']:6d}  {row['per_stream']:.3f}"
            )
        if ours is not None and peer is not None:
            r = {k: ours[k] / peer[k] if peer[k] else float("nan") for k in
                 ("first_p50", "first_p95", "final_p50", "final_p95", "per_stream")}  # fmt: skip
            print(
                f"{ours['clients']:7d}  ours/peer        {r['first_p50']:9.2f}/{r['first_p95']:<8.2f}"
                f"    {r['final_p50']:14.2f}/{r['final_p95']:<12.2f}            {r['per_stream']:.2f}"
            )


def start_ours(env: dict, tmp: str, name: str) -> tuple[subprocess.Popen, int] | None:
    port = free_port("BENCH_STREAM_PORT")
    log_path = Path(f"{tmp}/{name}.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [PY, "manage.py", "stream", "--port", str(port)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + 180
    while True:
        try:
            if requests.get(f"http://127.0.0.1:{port}/", timeout=2).json()["status"] == "ok":
                return proc, port
        except requests.RequestException:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            print(log_path.read_text(errors="replace")[-3000:])
            stop(proc)
            return None
        time.sleep(0.5)


def stop(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def admission(env: dict, tmp: str, key: str, spec: str, pcm: bytes, ends: list[float]) -> None:
    """A worker whose STREAM_MAX_SESSIONS is below the client count: who is refused, what the others get."""
    limit, clients = (int(x) for x in spec.split(":"))
    started = start_ours({**env, "STREAM_MAX_SESSIONS": str(limit)}, tmp, "admission")
    if started is None:
        print("admission run: the stream worker did not start")
        return
    proc, port = started
    try:
        url = f"ws://127.0.0.1:{port}/?api_key={key}"
        one_run(url, proc.pid, 2, pcm, ends)  # warm-up
        print(f"\nadmission control past saturation: STREAM_MAX_SESSIONS={limit}, {clients} clients")
        row = one_run(url, proc.pid, clients, pcm, ends)
        show(row)
        print(
            f"{row['refused_1013']} of {clients} refused at once with close code 1013 (try again later); the "
            f"{clients - row['refused_1013']} admitted kept end of speech -> final p50/p95 "
            f"{row['final_p50']:.0f}/{row['final_p95']:.0f} ms, first partial p95 {row['first_p95']:.0f} ms"
        )
    finally:
        stop(proc)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--sweep", default="30,40,60")
    parser.add_argument("--max-sessions", type=int, default=60)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--end-silence-ms", type=int, default=500, help="both servers' VAD end silence")
    parser.add_argument("--peer-server", default="", help="funasr_wss_server.py (or BENCH_PEER_WSS_SERVER)")
    parser.add_argument("--peer-ncpu", type=int, default=1, help="the peer's --ncpu (torch threads)")
    parser.add_argument("--admission", default="20:40", help="STREAM_MAX_SESSIONS:clients ('' to skip)")
    args = parser.parse_args()
    audio, ends = clip()
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    print(f"clip {audio.shape[0] / SR:.1f} s, speech ends at {', '.join(f'{e:.2f}' for e in ends)} s")
    print(f"load average before the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (others' work delays ours)")
    script = peer_script(args.peer_server)
    if script is not None and not script.is_file():
        print(f"--peer-server {script}: no such file")
        return 1
    if script is None:
        print("peer skipped: " + HOW_TO_GET)
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
            "STREAM_END_SILENCE_MS": str(args.end_silence_ms),
            "LOG_LEVEL": "WARNING",
        }
        manage(env, "build_test_model", f"{tmp}/paraformer_streaming", "--kind", "paraformer_streaming")
        if script is not None:
            manage(env, "build_test_model", f"{tmp}/fsmn_vad", "--kind", "fsmn_vad")
        manage(env, "migrate", "--noinput", "-v0")
        manage(env, "create_tenant", "bench")
        manage(env, "grant_tokens", "bench", "100000000", "--memo", "bench")
        key = manage(env, "create_api_key", "bench").splitlines()[-1]
        ours = peer = None
        try:
            started = start_ours(env, tmp, "stream")
            if started is None:
                return 1
            ours, port = started
            url = f"ws://127.0.0.1:{port}/?api_key={key}"
            peer_url = ""
            if script is not None:
                peer_port = free_port("BENCH_PEER_PORT")
                log_path = Path(f"{tmp}/peer.log")
                peer = start_peer(script, port=peer_port, online_model=f"{tmp}/paraformer_streaming",
                                  vad_model=f"{tmp}/fsmn_vad", ncpu=args.peer_ncpu,
                                  end_silence_ms=args.end_silence_ms, log_path=log_path)  # fmt: skip
                if not wait_listening(peer, peer_port, log_path):
                    print("peer: its server did not start (log above)")
                    return 1
                peer_url = f"ws://127.0.0.1:{peer_port}"
                print("\n".join(describe(args.peer_ncpu, args.end_silence_ms)))
            one_run(url, ours.pid, 2, pcm, ends)  # warm-up
            if peer_url:
                one_run(peer_url, peer.pid, 2, pcm, ends, peer=True)
            print(
                f"\nours: one stream worker, {args.replicas} replicas x 1 thread, STREAM_MAX_SESSIONS={args.max_sessions}"
            )
            pairs: list[tuple[dict | None, dict | None]] = []
            ours_done = peer_done = False
            for n in [args.clients, *(int(x) for x in args.sweep.split(",") if x)]:
                row = peer_row = None
                if not ours_done:
                    row = one_run(url, ours.pid, n, pcm, ends)
                    show(row)
                    ours_done = saturated(row)
                    if ours_done:
                        print(f"ours saturates: p95 passes {TARGET_MS:.0f} ms (or errors) at {n} clients")
                if peer_url and not peer_done:
                    peer_row = one_run(peer_url, peer.pid, n, pcm, ends, peer=True)
                    show(peer_row)
                    peer_done = saturated(peer_row)
                    if peer_done:
                        print(f"peer saturates: p95 passes {TARGET_MS:.0f} ms (or errors) at {n} clients")
                pairs.append((row, peer_row))
                if n == args.clients:
                    verdict = "meets" if row["final_p95"] <= TARGET_MS else "misses"
                    print(
                        f"ours: end of speech -> final p95 {row['final_p95']:.0f} ms {verdict} the {TARGET_MS:.0f} ms target"
                    )
                if ours_done and (peer_done or not peer_url):
                    break
            table(pairs)
            if not peer_url:
                print("(no peer column: see 'peer skipped' above)")
        finally:
            stop(ours)
            stop(peer)
        if args.admission:
            admission(env, tmp, key, args.admission, pcm, ends)
    return 0


if __name__ == "__main__":
    sys.exit(main())
