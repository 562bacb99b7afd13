"""Prometheus instruments shared by every process (web, django-q2 clusters, streaming), and the scrape.

Each process records into files under PROMETHEUS_MULTIPROC_DIR (prometheus_client's multiprocess mode; the
settings export the variable before prometheus_client is first imported, and child processes inherit it);
a scrape sums the files of the processes on this machine, plus a few gauges read at scrape time from cheap
sources (broker queue lengths, indexed counts of the active jobs, cluster heartbeats). Nothing here counts
a whole table. Code that measures something calls one of these instruments in one line.
"""

from __future__ import annotations

import functools
import glob
import hmac
import ipaddress
import os
import re
import threading
from collections.abc import Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.registry import REGISTRY, Collector


@functools.cache
def _folder_ready() -> None:
    """Every process writes its files here; a missing folder would make the first recording fail."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)


class _Lazy:
    """An instrument built at its first use, not at import (in multiprocess mode building one opens its file,
    and importing the app must write nothing)."""

    def __init__(self, kind, *args, **kwargs):
        self._make = functools.partial(kind, *args, **kwargs)
        self._metric = None
        self._lock = threading.Lock()

    def __getattr__(self, name):
        if self._metric is None:
            with self._lock:
                if self._metric is None:
                    _folder_ready()
                    self._metric = self._make()
        return getattr(self._metric, name)


_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, float("inf"))

JOBS_SUBMITTED = _Lazy(Counter, "tingxie_jobs_submitted", "Transcription jobs accepted", ["source"])
JOBS_FINISHED = _Lazy(Counter, "tingxie_jobs_finished", "Transcription jobs that reached a final status", ["status"])
JOB_FAILURES = _Lazy(Counter, "tingxie_job_failures", "Failed transcription jobs by error code", ["code"])
JOB_QUEUE_WAIT = _Lazy(
    Histogram, "tingxie_job_queue_wait_seconds", "Queued to claimed, per attempt", ["model"], buckets=_LATENCY_BUCKETS
)
JOB_PROCESSING = _Lazy(
    Histogram, "tingxie_job_processing_seconds", "First claim to result stored", ["model"], buckets=_LATENCY_BUCKETS
)
JOB_END_TO_END = _Lazy(
    Histogram, "tingxie_job_end_to_end_seconds", "Submitted to result stored", ["model"], buckets=_LATENCY_BUCKETS
)
AUDIO_SECONDS = _Lazy(Counter, "tingxie_audio_seconds", "Audio seconds of succeeded jobs (billed work)", ["model"])
TOKENS_BILLED = _Lazy(Counter, "tingxie_tokens_billed", "Tokens debited from tenants' balances")
MODEL_LOAD_SECONDS = _Lazy(
    Histogram,
    "tingxie_model_load_seconds",
    "Time to load an ASR model",
    ["model"],
    buckets=(1, 2, 5, 10, 20, 40, 80, 160, 600),
)
MODEL_LOADS = _Lazy(Counter, "tingxie_model_loads", "ASR model loads (all processes)", ["model"])
# One series per live process (the pid label): more than 1 means a process loaded its model twice.
MODEL_LOADS_PER_PROCESS = _Lazy(
    Gauge, "tingxie_model_loads_per_process", "ASR model loads in this process", ["model"], multiprocess_mode="liveall"
)
GPU_MEMORY = _Lazy(
    Gauge, "tingxie_gpu_memory_bytes", "CUDA memory of an ASR process", ["device", "kind"], multiprocess_mode="liveall"
)
WEBHOOK_DELIVERIES = _Lazy(Counter, "tingxie_webhook_deliveries", "Outbound webhook attempts by outcome", ["outcome"])
STRIPE_EVENTS = _Lazy(Counter, "tingxie_stripe_events", "Stripe webhook events by processing status", ["status"])
# The streaming server sets this: inc() when a session opens, dec() when it ends (or use stream_session()).
STREAM_SESSIONS_ACTIVE = _Lazy(
    Gauge, "tingxie_stream_sessions_active", "Open real-time streaming sessions", multiprocess_mode="livesum"
)


class stream_session:  # noqa: N801 - used as `with stream_session():`
    """Counts one open streaming session in STREAM_SESSIONS_ACTIVE for the duration of the block."""

    def __enter__(self):
        STREAM_SESSIONS_ACTIVE.inc()
        return self

    def __exit__(self, *exc):
        STREAM_SESSIONS_ACTIVE.dec()
        return False


def multiproc_dir() -> str:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


class _ThisProcess(Collector):
    def collect(self):
        yield from REGISTRY.collect()


_LIVE_FILE = re.compile(r"gauge_live\w+?_(\d+)\.db$")


def _forget_dead_processes(path: str) -> None:
    """Drop the live gauges of processes that ended on this machine (a killed worker cannot do it itself)."""
    pids = set()
    for name in glob.glob(os.path.join(path, "gauge_live*_*.db")):
        match = _LIVE_FILE.search(name)
        if match:
            pids.add(int(match.group(1)))
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, path)
        except PermissionError:
            pass  # alive, another user's


def render(collectors: Iterable[Collector] = ()) -> tuple[bytes, str]:
    """The exposition text: this machine's processes' instruments plus the given scrape-time collectors."""
    path = multiproc_dir()
    if path and os.path.isdir(path):
        _forget_dead_processes(path)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=path)
    else:
        registry = CollectorRegistry()
        registry.register(_ThisProcess())  # no multiprocess folder: what this process recorded
    for collector in collectors:
        registry.register(collector)
    return generate_latest(registry), CONTENT_TYPE_LATEST


def model_loaded(*, model: str, seconds: float) -> None:
    MODEL_LOAD_SECONDS.labels(model=model).observe(seconds)
    MODEL_LOADS.labels(model=model).inc()
    MODEL_LOADS_PER_PROCESS.labels(model=model).inc()


def gpu_memory(*, device: str, allocated: int, reserved: int) -> None:
    GPU_MEMORY.labels(device=device, kind="allocated").set(allocated)
    GPU_MEMORY.labels(device=device, kind="reserved").set(reserved)


def scrape_allowed(*, authorization: str, remote_addr: str) -> bool:
    """A scrape carrying `Bearer <METRICS_TOKEN>` (when one is set) or from METRICS_ALLOWED_IPS."""
    from django.conf import settings

    token = settings.METRICS_TOKEN
    scheme, _, given = (authorization or "").partition(" ")
    if token and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
        return True
    try:
        client = ipaddress.ip_address(remote_addr)
    except ValueError:
        return False
    return any(client in ipaddress.ip_network(net, strict=False) for net in settings.METRICS_ALLOWED_IPS)


def serve_in_thread(*, host: str, port: int) -> None:
    """This machine's processes' instruments on http://host:port/metrics: a GPU machine without the web tier
    (`make worker` with WORKER_METRICS_PORT) is scraped here, with the same token or allowlist as /metrics."""
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    def app(environ, start_response):
        allowed = scrape_allowed(
            authorization=environ.get("HTTP_AUTHORIZATION", ""), remote_addr=environ.get("REMOTE_ADDR", "")
        )
        if not allowed or environ.get("PATH_INFO") != "/metrics":
            start_response("403 Forbidden" if not allowed else "404 Not Found", [("Content-Type", "text/plain")])
            return [b"Send Authorization: Bearer <METRICS_TOKEN> to /metrics.\n"]
        body, content_type = render()
        start_response("200 OK", [("Content-Type", content_type)])
        return [body]

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, *args) -> None:  # one line per scrape is noise
            pass

    server = make_server(host, port, app, handler_class=QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
