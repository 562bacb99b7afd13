"""Start a real Tingxie stack (uvicorn + ASR qcluster) or the peer (funasr-server) for benchmarks.

A benchmark never touches what it did not create. It takes from the environment (see README, "Benchmarks"):
BENCH_PORT / BENCH_PEER_PORT (default: a free port), BENCH_REDIS_URL (default redis://127.0.0.1:6379/14;
the Redis broker runs refuse a database where a django-q2 queue already lives, and delete only their own
keys afterwards), BENCH_POSTGRES_URL (the server where fresh_postgres() creates, then drops, its own
database named BENCH_DATABASE_NAME, default tingxie_bench_<pid>), BENCH_WEB_WORKERS (uvicorn processes of our
web tier, default 1; the peer keeps its own one). SQLite databases and media files live in a temporary directory.
"""

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


def free_port(env_var: str | None = None) -> int:
    """The port named by `env_var` if set, else one the system reports free."""
    if env_var and os.environ.get(env_var):
        return int(os.environ[env_var])
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


REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
# The Redis keys of a Tingxie site: django-q2's queues and cluster stats (cluster names `default`, `asr`).
DJANGO_Q_KEYS = ("django_q:default:*", "django_q:asr:*")


class RedisClaim:
    """The bench's use of one Redis database: refused if a django-q2 queue lives there already (another
    site, or a bench that crashed: then clear it by hand or pick another BENCH_REDIS_URL); `release()`
    deletes only the keys the bench made (its queues and cache prefix), never the whole database."""

    def __init__(self, url: str, cache_prefix: str):
        import redis

        self.client = redis.from_url(url)
        self.url = url
        self.cache_prefix = cache_prefix
        foreign = [k.decode() for pattern in DJANGO_Q_KEYS for k in self.client.scan_iter(match=pattern, count=1000)]
        if foreign:
            raise RuntimeError(
                f"Redis {url} already holds django-q2 keys ({', '.join(sorted(foreign)[:5])}...): another "
                "Tingxie uses it. Set BENCH_REDIS_URL to a database of your own."
            )

    def release(self) -> None:
        for pattern in (*DJANGO_Q_KEYS, f"{self.cache_prefix}:*"):
            keys = list(self.client.scan_iter(match=pattern, count=1000))
            if keys:
                self.client.delete(*keys)


class Stack:
    """uvicorn + one ASR worker cluster (+ the default cluster) on a fresh database."""

    def __init__(
        self,
        *,
        broker: str = "orm",
        asr_workers: int = 1,
        database_url: str | None = None,
        log_level: str = "WARNING",
        asr: bool = True,
        model: Path | str = FIXTURE_MODEL,
        asr_env: dict | None = None,
        web_workers: int | None = None,
    ):
        self.tmp = tempfile.TemporaryDirectory(prefix="tingxie-bench-")
        self.port = free_port("BENCH_PORT")
        self.url = f"http://127.0.0.1:{self.port}"
        cache_prefix = f"tingxie-bench-{os.getpid()}-{time.time_ns()}"
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "portal.settings.local",
            "DJANGO_DEBUG": "0",
            "DATABASE_URL": database_url or f"sqlite:///{self.tmp.name}/bench.sqlite3",
            "MEDIA_ROOT": f"{self.tmp.name}/media",
            "ASR_MODEL": str(model),
            "ASR_WORKERS": str(asr_workers),
            "Q_BROKER": broker,
            "REDIS_URL": REDIS_URL,
            "CACHE_KEY_PREFIX": cache_prefix,
            "API_SUBMIT_RATE": "1000000/min",
            "API_READ_RATE": "10000000/min",
            "LOG_LEVEL": log_level,
            "PYTHONUNBUFFERED": "1",
        }
        self.redis = RedisClaim(REDIS_URL, cache_prefix) if broker == "redis" else None
        self.procs: list[subprocess.Popen] = []
        self.logs: list[Path] = []
        self._manage("migrate", "--noinput", "-v0")
        self._manage("create_tenant", "bench", "--name", "Bench")
        self._manage("grant_tokens", "bench", "100000000", "--memo", "bench")
        self.key = self._manage("create_api_key", "bench").strip().splitlines()[-1]
        self._spawn("web", [str(ROOT / ".venv/bin/uvicorn"), "portal.asgi:application", "--host", "127.0.0.1",
                            "--port", str(self.port), "--lifespan", "off", "--no-access-log",
                            "--timeout-graceful-shutdown", "2",
                            "--workers", str(web_workers or os.environ.get("BENCH_WEB_WORKERS", "1"))])  # fmt: skip
        if asr:
            self._spawn("asr", [PY, "manage.py", "qcluster"], {"Q_CLUSTER_NAME": "asr", **(asr_env or {})})
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

    def _wait_healthy(self, timeout: float = 120) -> None:
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

    def log_of(self, name: str) -> str:
        path = Path(self.tmp.name) / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def worker_log(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.logs)

    @property
    def web_pid(self) -> int:
        return self.procs[0].pid

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        if self.redis:
            self.redis.release()
        self.tmp.cleanup()


class FreshPostgres:
    """A new, empty PostgreSQL database (the Redis deployment's database) that the bench creates and, in
    `drop()`, removes again. Server: BENCH_POSTGRES_URL; name: BENCH_DATABASE_NAME (default with the pid).
    CREATE DATABASE fails on an existing name: the bench never drops a database it did not create."""

    def __init__(self):
        self.server = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
        self.name = os.environ.get("BENCH_DATABASE_NAME", f"tingxie_bench_{os.getpid()}")
        self.url: str | None = None
        try:
            import psycopg
            from psycopg import sql

            with psycopg.connect(self.server, autocommit=True) as conn:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))
        except Exception as exc:  # noqa: BLE001
            print(f"(PostgreSQL database {self.name} not created, using SQLite: {exc})")
            return
        self.url = self.server.rsplit("/", 1)[0] + f"/{self.name}"

    def drop(self) -> None:
        if self.url is None:
            return
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.server, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name)))
        self.url = None


class Peer:
    """funasr's own `funasr-server` (FastAPI, one request at a time) with the same model."""

    def __init__(self, model: Path | str = FIXTURE_MODEL):
        self.port = free_port("BENCH_PEER_PORT")
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(prefix="peer-", suffix=".log", delete=False)  # noqa: SIM115
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "MODELSCOPE_OFFLINE": "1"}
        self.proc = subprocess.Popen(
            [str(ROOT / ".venv/bin/funasr-server"), "--host", "127.0.0.1", "--port", str(self.port), "--device", "cpu",
             "--model-path", str(model)],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True, env=env,
        )  # fmt: skip
        deadline = time.monotonic() + 300  # a full-size model loads in about a minute on a busy box
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise RuntimeError("funasr-server did not start: " + Path(self.log.name).read_text()[-2000:])

    @property
    def pid(self) -> int:
        return self.proc.pid

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
