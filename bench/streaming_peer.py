"""The streaming bench's peer: funasr's own runtime WebSocket server, started from a script the user fetched.

Not part of Tingxie and never copied into it: bench/streaming.py takes its path from --peer-server or the
BENCH_PEER_WSS_SERVER environment variable, and runs it through bench/peer_server.py (an adapter, not a copy).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

from bench.harness import FIXTURE_MODEL, PY, ROOT

PEER_COMMIT = "0d6e6a2fb8581f21002f8c25ad5413e8ec694386"
PEER_PATH = "runtime/python/websocket/funasr_wss_server.py"
PEER_URL = f"https://github.com/modelscope/FunASR/blob/{PEER_COMMIT}/{PEER_PATH}"
HOW_TO_GET = (
    f"the peer is funasr's runtime/python/websocket server at commit {PEER_COMMIT[:9]} (2025-03; newer versions "
    f"hard-code hub models and cannot run offline), which is not in the funasr wheel. Fetch it with\n"
    f"    curl -o var/funasr_wss_server.py https://raw.githubusercontent.com/modelscope/FunASR/{PEER_COMMIT}/"
    f"{PEER_PATH}\n"
    f"  (or from a clone: git show {PEER_COMMIT[:9]}:{PEER_PATH}; page: {PEER_URL})\n"
    f"  and pass --peer-server var/funasr_wss_server.py or set BENCH_PEER_WSS_SERVER."
)


def peer_script(arg: str) -> Path | None:
    path = arg or os.environ.get("BENCH_PEER_WSS_SERVER", "")
    return Path(path).expanduser().resolve() if path else None


def describe(ncpu: int, end_silence_ms: int) -> list[str]:
    return [
        f"peer: funasr_wss_server.py ({PEER_COMMIT[:9]}) via bench/peer_server.py (websockets' legacy API, "
        f"disable_update), one process, inference on its event loop, --ncpu {ncpu}, no TLS, no punctuation",
        "  same offline SenseVoice and online streaming Paraformer directories as ours; its VAD is funasr's "
        "FsmnVADStreaming (build_test_model --kind fsmn_vad: real dims, output head trained as an energy VAD), "
        "ours is silero (ONNX, 32 ms frames)",
        f"  end silence: both {end_silence_ms} ms (peer: max_end_silence_time={end_silence_ms} on each VAD call; "
        "FSMN's default is 800 ms, and without the option funasr 1.4.16 waits 2 s below 10 s of speech; "
        f"ours: STREAM_END_SILENCE_MS={end_silence_ms})",
        "  is_final: the peer sends is_final = is_speaking (true on endpoint finals, false on the answer to "
        "is_speaking:false) and no is_end ack; both servers are timed on the same event, the first 2pass-offline "
        "with words after each sentence end; the peer ignores itn and keeps SenseVoice's tags (no effect on timing)",
        "  first partial: not like for like. The peer runs its online model on every 600 ms of the stream from "
        "its start, speech or silence (its first call, at 0.6 s, holds 0.1 s of speech), and the random-weights "
        "Paraformer writes text even for silence; ours runs it from the VAD's speech start, so its first partial "
        "comes one 600 ms stride after speech starts. Running on silence also costs the peer CPU ours does not spend",
        f"  at low load the finals' gap is the VADs' endpoint lag at the same nominal {end_silence_ms} ms: FSMN "
        f"counts {end_silence_ms} - 150 ms of silence frames after its 150 ms speech-to-silence window; silero "
        f"waits {end_silence_ms} ms of 32 ms frames below its 0.35 hysteresis threshold",
    ]


def start_peer(script: Path, *, port: int, online_model: str, vad_model: str, ncpu: int, end_silence_ms: int,
               log_path: Path) -> subprocess.Popen:  # fmt: skip
    args = [
        PY, str(ROOT / "bench" / "peer_server.py"), "--end-silence-ms", str(end_silence_ms), str(script),
        "--host", "127.0.0.1", "--port", str(port), "--asr_model", str(FIXTURE_MODEL),
        "--asr_model_online", online_model, "--vad_model", vad_model, "--punc_model", "", "--certfile", "",
        "--device", "cpu", "--ngpu", "0", "--ncpu", str(ncpu),
    ]  # fmt: skip
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            args, cwd=script.parent, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip


def wait_listening(proc: subprocess.Popen, port: int, log_path: Path, timeout: float = 180) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        with socket.socket() as s:
            s.settimeout(1)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.5)
    print(log_path.read_text(errors="replace")[-3000:])
    return False
