"""The stream worker: a plain ASGI app served by uvicorn on STREAM_PORT (`make stream`; `make run` starts one).

WebSocket connections to `/v1/realtime` speak OpenAI's Realtime transcription protocol (streaming.realtime);
every other path speaks FunASR's runtime protocol (stock clients cannot add a path). Plain HTTP answers a health document. The models load once per process, in the background at
startup; inference runs on the engine's thread pool and database work on a pool of its own, so the event
loop only moves messages: pings are answered however busy inference is.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.production")
django.setup()

from django.conf import settings  # noqa: E402
from django.db import close_old_connections  # noqa: E402

from portal.gc_freeze import freeze_long_lived  # noqa: E402

logger = logging.getLogger(__name__)


class StreamServer:
    """The ASGI application: lifespan, a health document on HTTP, FunASR protocol sessions on WebSocket."""

    def __init__(self) -> None:
        self.sessions: set = set()
        self.engine = None
        self.loaded = threading.Event()
        self.db_executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="stream-db")
        self._start_lock = threading.Lock()

    # --- models -----------------------------------------------------------------------------------------
    def start_engine(self):
        """Build the streaming engine and load its models in a daemon thread (once per process)."""
        with self._start_lock:
            if self.engine is None:
                from transcription.engines.streaming import StreamingEngine

                self.engine = StreamingEngine(
                    offline_model=settings.ASR_MODEL,
                    online_model=settings.STREAM_ONLINE_MODEL,
                    device=settings.STREAM_DEVICE,
                    threads=settings.STREAM_THREADS,
                    replicas=settings.STREAM_REPLICAS,
                )
                threading.Thread(target=self._load, name="stream-model-load", daemon=True).start()
        return self.engine

    def _load(self) -> None:
        # Lower this thread's priority (Linux: per thread): on a shared box the web tier starting next to us
        # answers first; inference threads, made later by the event loop's thread, keep normal priority.
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        try:
            self.engine.load()
        except Exception:  # the reason is kept on the engine; sessions report it
            logger.exception("Streaming models failed to load")
        else:
            # The models live as long as the process: a full collection walking them (~200 ms) would stall
            # every live stream at once (portal.gc_freeze).
            logger.info("Streaming models loaded; %d objects frozen", freeze_long_lived())
        finally:
            self.loaded.set()

    async def engine_ready(self):
        """The loaded engine, waiting for the load if it is still running; raises EngineUnavailable."""
        engine = self.start_engine()
        if not self.loaded.is_set():
            await asyncio.get_running_loop().run_in_executor(None, self.loaded.wait)
        engine.load()  # raises the load failure again, quickly
        return engine

    # --- database ---------------------------------------------------------------------------------------
    async def db(self, fn, /, *args, **kwargs):
        """Run ORM work in the database pool (never on the event loop)."""

        def call():
            close_old_connections()
            return fn(*args, **kwargs)

        return await asyncio.get_running_loop().run_in_executor(self.db_executor, call)

    # --- ASGI -------------------------------------------------------------------------------------------
    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._health(send)
        elif scope["type"] == "websocket":
            if scope.get("path", "").rstrip("/").endswith("/realtime"):  # /v1/realtime: OpenAI Realtime
                from streaming.realtime import RealtimeConnection as Connection
            else:  # any other path: FunASR's protocol (its stock clients cannot choose one)
                from streaming.connection import FunasrConnection as Connection

            await Connection(self, scope, receive, send).run()

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.start_engine()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _health(self, send) -> None:
        engine = self.engine
        failure = engine.failure if engine is not None else ""
        body = {
            "status": "error" if failure else ("ok" if self.loaded.is_set() else "loading"),
            "sessions": len(self.sessions),
            "max_sessions": settings.STREAM_MAX_SESSIONS,
            "protocol": "funasr",
            "protocols": {"funasr": "any path", "openai_realtime": "/v1/realtime?intent=transcription"},
        }
        if failure:
            body["error"] = failure
        payload = json.dumps(body).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 503 if failure else 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": payload})


application = StreamServer()
