"""Start a real Tingxie stack (gunicorn + ASR qcluster) or the peer (funasr-server) for benchmarks."""

from __future__ import annotations

import io
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PY = str(ROOT / ".venv" / "bin" / "python")
FIXTURE_MODEL = ROOT / "tests" / "fixtures" / "models" / "sensevoice_trained"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(np.ceil(q / 100 * len(ordered))) - 1))]


def summary(values: list[float]) -> str:
    return f"median {statistics.median(values):7.1f} ms  p95 {pct(values, 95):7.1f} ms  (n={len(values)})"


def wav_bytes(samples: np.ndarray, rate: int = 16000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return buf.getvalue()


def fixture_speech(seconds: float) -> np.ndarray:
    from tests.audio_samples import silence, speak_fixture

    unit = np.concatenate([speak_fixture("zh_welcome"), silence(0.3)])
    reps = int(seconds * 16000 / len(unit)) + 1
    return np.tile(unit, reps)[: int(seconds * 16000)].astype(np.float32)


def variant(samples: np.ndarray, i: int) -> bytes:
    """Distinct bytes per request (no cache hits), same length and content."""
    out = samples.copy()
    out[-1] = (i % 1000 + 1) / 32767.0  # one int16 step per request id
    out[-2] = (i // 1000 + 1) / 32767.0
    return wav_bytes(out)


class Stack:
    """gunicorn + one ASR worker cluster (+ the default cluster) on a fresh database."""

    def __init__(
        self,
        *,
        broker: str = "orm",
        asr_workers: int = 1,
        web_threads: int = 64,
        database_url: str | None = None,
        log_level: str = "WARNING",
    ):
        self.tmp = tempfile.TemporaryDirectory(prefix="tingxie-bench-")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        redis_url = "redis://127.0.0.1:6379/14"
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "portal.settings.local",
            "DJANGO_DEBUG": "0",
            "DATABASE_URL": database_url or f"sqlite:///{self.tmp.name}/bench.sqlite3",
            "MEDIA_ROOT": f"{self.tmp.name}/media",
            "ASR_MODEL": str(FIXTURE_MODEL),
            "ASR_WORKERS": str(asr_workers),
            "Q_BROKER": broker,
            "REDIS_URL": redis_url,
            "API_SUBMIT_RATE": "1000000/min",
            "API_READ_RATE": "10000000/min",
            "LOG_LEVEL": log_level,
            "PYTHONUNBUFFERED": "1",
        }
        if broker == "redis":
            import redis

            redis.from_url(redis_url).flushdb()
        self.procs: list[subprocess.Popen] = []
        self.logs: list[Path] = []
        self._manage("migrate", "--noinput", "-v0")
        self._manage("create_tenant", "bench", "--name", "Bench")
        self._manage("grant_tokens", "bench", "100000000", "--memo", "bench")
        self.key = self._manage("create_api_key", "bench").strip().splitlines()[-1]
        self._spawn("web", [str(ROOT / ".venv/bin/gunicorn"), "portal.wsgi", "-b", f"127.0.0.1:{self.port}", "-w", "1",
                            "--threads", str(web_threads)])  # fmt: skip
        self._spawn("asr", [PY, "manage.py", "qcluster"], {"Q_CLUSTER_NAME": "asr"})
        self._wait_healthy()

    def _manage(self, *args: str) -> str:
        return subprocess.run(
            [PY, "manage.py", *args], cwd=ROOT, env=self.env, check=True, capture_output=True, text=True
        ).stdout

    def _spawn(self, name: str, cmd: list[str], extra: dict | None = None) -> None:
        log = Path(self.tmp.name) / f"{name}.log"
        self.logs.append(log)
        self.procs.append(
            subprocess.Popen(
                cmd,
                cwd=ROOT,
                env={**self.env, **(extra or {})},
                stdout=open(log, "wb"),  # noqa: SIM115
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        )

    def _wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError("web did not become healthy")

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.key}"}

    def submit(self, session: requests.Session, audio: bytes) -> tuple[dict, float]:
        t0 = time.perf_counter()
        r = session.post(f"{self.url}/api/v1/transcriptions", headers=self.headers,
                         files={"file": ("a.wav", audio, "audio/wav")}, timeout=60)  # fmt: skip
        r.raise_for_status()
        return r.json(), (time.perf_counter() - t0) * 1000

    def wait(self, session: requests.Session, job_id: str, *, timeout: float = 300, **_ignored) -> dict:
        """Long-poll GET ?wait= until the job is final (what an API client would do)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = session.get(f"{self.url}/api/v1/transcriptions/{job_id}", params={"wait": 30},
                               headers=self.headers, timeout=60).json()  # fmt: skip
            if body["status"] in ("succeeded", "failed", "canceled"):
                return body
        raise TimeoutError(job_id)

    def warm_up(self, audio: bytes, n: int = 3) -> None:
        s = requests.Session()
        for i in range(n):
            job, _ = self.submit(s, audio[:-2] + bytes([i % 256, 0]))
            body = self.wait(s, job["id"], interval=0.05, timeout=180)
            if body["status"] != "succeeded":
                raise RuntimeError(f"warm-up job failed: {body['error']}")

    def worker_log(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.logs)

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        self.tmp.cleanup()


class Peer:
    """funasr's own `funasr-server` (FastAPI, one request at a time) with the same model."""

    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(prefix="peer-", suffix=".log", delete=False)  # noqa: SIM115
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "MODELSCOPE_OFFLINE": "1"}
        self.proc = subprocess.Popen(
            [str(ROOT / ".venv/bin/funasr-server"), "--host", "127.0.0.1", "--port", str(self.port), "--device", "cpu",
             "--model-path", str(FIXTURE_MODEL)],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True, env=env,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise RuntimeError("funasr-server did not start: " + Path(self.log.name).read_text()[-2000:])

    def transcribe(self, session: requests.Session, audio: bytes) -> float:
        t0 = time.perf_counter()
        r = session.post(f"{self.url}/v1/audio/transcriptions", files={"file": ("a.wav", audio, "audio/wav")},
                         data={"model": "whisper-1"}, timeout=120)  # fmt: skip
        r.raise_for_status()
        return (time.perf_counter() - t0) * 1000

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)
