"""One FunASR-protocol WebSocket connection: handshake, limits, the recognizer, billing, a clean end.

Two tasks per connection: the reader always waits on receive() (so uvicorn keeps answering pings and a slow
model never stalls the socket) and puts messages on a queue, refusing audio faster than STREAM_MAX_SPEED x real
time past a burst and more than STREAM_MAX_BUFFER_SECONDS waiting; the processor takes them in order and runs
the recognizer on the engine's thread pool, one call at a time (its caches require it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time

import numpy as np
from django.conf import settings

from portal import metrics
from portal.errors import InsufficientBalance
from streaming import funasr_protocol as proto
from streaming import services
from streaming.auth import AuthError, caller_authenticate
from streaming.services import TooManyStreams
from transcription.constants import SAMPLE_RATE
from transcription.engines.base import EngineUnavailable

logger = logging.getLogger(__name__)

HEARTBEAT_S = 30.0  # a quiet session still proves it is alive this often (stream_sessions_sweep)


class Close(Exception):  # noqa: N818  (a control-flow signal, not an error)
    """End the connection: close `code` with `reason`, recorded as the session's close reason `key`."""

    def __init__(self, code: int, key: str, message: str, *, send_error: bool = True) -> None:
        super().__init__(message)
        self.code, self.key, self.message, self.send_error = code, key, message, send_error


class FunasrConnection:
    """The FunASR protocol; protocol adapters (streaming.realtime) override the hooks marked "hook"."""

    protocol = "funasr"

    def __init__(self, server, scope, receive, send) -> None:
        self.server, self.scope, self._receive, self._send = server, scope, receive, send
        self.queue: asyncio.Queue = asyncio.Queue()
        self.config: proto.FunasrConfig | None = None
        self.configured = False  # a text message came before any audio
        self.session = None  # StreamSession row once configured
        self.caller = None  # streaming.auth.Caller
        self.recognizer = None
        self.speakers = None  # streaming.speakers.StreamSpeakers when the first message asks for speakers
        self.closed = False
        self.started = time.monotonic()
        self.received_bytes = 0  # audio bytes accepted (at the client's rate)
        self.pending_bytes = 0  # audio bytes queued, not yet processed
        self.audio_s = 0.0  # seconds processed (16 kHz)
        self.offset_s = 0.0  # where the current recognizer's audio starts on the session's timeline
        self.covered_s = 0.0  # seconds the hold covers
        self.utterance_open = False  # audio since the last end of utterance
        self.carry = b""  # an odd byte of a frame, joined to the next frame
        self.resampler = None
        self.warned = False  # the hotwords notice is sent once per stream

    # --- wire -------------------------------------------------------------------------------------------
    async def send_json(self, message: dict) -> bool:
        if self.closed:
            return False
        try:
            await self._send({"type": "websocket.send", "text": json.dumps(message, ensure_ascii=False)})
            return True
        except (OSError, RuntimeError):  # the client is gone: ClientDisconnected, or a send after close
            self.closed = True
            return False

    async def close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(OSError, RuntimeError):  # already gone
            await self._send({"type": "websocket.close", "code": code, "reason": reason[:120]})

    async def _deny(self, status: int, code: str, message: str) -> None:
        """Refuse the handshake with an HTTP answer in the API's error shape (403 where unsupported)."""
        body = json.dumps({"error": {"code": code, "message": message}}).encode()
        if "websocket.http.response" in (self.scope.get("extensions") or {}):
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await self._send({"type": "websocket.http.response.start", "status": status, "headers": headers})
            await self._send({"type": "websocket.http.response.body", "body": body})
        else:
            await self._send({"type": "websocket.close", "code": 1008})
        self.closed = True

    # --- lifecycle --------------------------------------------------------------------------------------
    async def run(self) -> None:
        if (await self._receive())["type"] != "websocket.connect":
            return
        try:
            self.caller = await self.server.db(caller_authenticate, self.scope)
        except AuthError as exc:
            await self._deny(401, "invalid_api_key", str(exc))
            return
        await self._send(self.accept_message(self.scope.get("subprotocols") or []))
        server = self.server
        if len(server.sessions) >= settings.STREAM_MAX_SESSIONS:
            message = f"server full: {settings.STREAM_MAX_SESSIONS} streams; try again later"
            await self.refuse_full(message)
            await self.close(1013, message)
            return
        server.sessions.add(self)
        reason, message = "completed", ""
        reader = None
        try:
            await self.begin()
            reader = asyncio.create_task(self._reader())
            await self._process()
        except Close as exc:
            reason, message = exc.key, exc.message
            if exc.send_error:
                await self.send_json(self.error_event(exc.key, exc.message))
            await self.close(exc.code, f"{exc.key}: {exc.message}")
        except Exception:
            logger.exception("Stream %s failed", getattr(self.session, "pk", "-"))
            reason, message = "server_error", "The stream failed on the server."
            await self.send_json(self.error_event(reason, message))
            await self.close(1011, "server_error")
        finally:
            if reader is not None:
                reader.cancel()
            server.sessions.discard(self)
            if self.session is not None:
                metrics.STREAM_SESSIONS_ACTIVE.dec()
                await server.db(
                    services.stream_session_close,
                    session_id=self.session.pk,
                    reason=reason,
                    message=message,
                    audio_seconds=self.audio_s,
                )

    # --- hooks (the FunASR protocol's answers) ----------------------------------------------------------
    def accept_message(self, offered: list[str]) -> dict:
        """hook: the handshake's accept (the subprotocol echoed)."""
        return {"type": "websocket.accept", **({"subprotocol": "binary"} if "binary" in offered else {})}

    async def begin(self) -> None:
        """hook: runs once the socket is accepted, before any message is read."""

    async def refuse_full(self, message: str) -> None:
        """hook: what the client hears before the 1013 close when the worker is full (FunASR: the close only)."""

    async def recognizer_call(self, fn, *args):
        """hook: run a recognizer method (feed, finish) on the engine's pool; a failure ends the stream here."""
        return await self._run(fn, *args)

    def error_event(self, key: str, message: str) -> dict:
        """hook: the message telling the client why its stream ends."""
        return proto.error_message(self.config, key, message)

    def recognizer_settings(self):
        """hook: how the current configuration recognizes."""
        return proto.recognizer_settings(self.config)

    async def _reader(self) -> None:
        """Receive forever (pings stay answered); check limits; queue messages for the processor."""
        idle = settings.STREAM_IDLE_SECONDS
        while True:
            try:
                message = await asyncio.wait_for(self._receive(), timeout=idle)
            except TimeoutError:
                await self.queue.put(("limit", Close(1008, "idle_timeout", f"No message for {idle} s.")))
                return
            kind = message["type"]
            if kind == "websocket.disconnect":
                await self.queue.put(("gone", message.get("code", 1005)))
                return
            if message.get("bytes") is not None:
                data = message["bytes"]
                problem = self._audio_problem(len(data))
                if problem is not None:
                    await self.queue.put(("limit", problem))
                    return
                self.received_bytes += len(data)
                self.pending_bytes += len(data)
                await self.queue.put(("audio", data))
            elif message.get("text") is not None:
                self.configured = True  # the processor applies it; audio may follow at once
                await self.queue.put(("text", message["text"]))

    def _audio_problem(self, size: int) -> Close | None:
        if not self.configured:
            return Close(1008, "bad_request", "Send the JSON configuration message before any audio.")
        if size > settings.STREAM_MAX_FRAME_BYTES:
            limit = settings.STREAM_MAX_FRAME_BYTES
            return Close(1009, "frame_too_large", f"A frame of {size} bytes exceeds the limit of {limit} bytes.")
        rate = 2 * (self.config.audio_fs if self.config is not None else SAMPLE_RATE)
        if (self.pending_bytes + size) / rate > settings.STREAM_MAX_BUFFER_SECONDS:
            return Close(1008, "buffer_full", "More audio is waiting than this stream may buffer; send in real time.")
        elapsed = time.monotonic() - self.started
        allowed = settings.STREAM_BURST_SECONDS + settings.STREAM_MAX_SPEED * elapsed
        if (self.received_bytes + size) / rate > allowed:
            speed = settings.STREAM_MAX_SPEED
            return Close(1008, "too_fast", f"Audio arrives faster than {speed:g}x real time; send it as it is spoken.")
        return None

    # --- processing -------------------------------------------------------------------------------------
    async def _process(self) -> None:
        deadline = self.started + settings.STREAM_MAX_SESSION_SECONDS
        while True:
            left = deadline - time.monotonic()
            try:
                kind, value = await asyncio.wait_for(self.queue.get(), timeout=max(0.0, min(left, HEARTBEAT_S)))
            except TimeoutError:
                if time.monotonic() < deadline:
                    if self.session is not None:  # alive though quiet: the sweeper leaves it alone
                        await self.server.db(
                            services.stream_session_heartbeat, session_id=self.session.pk, audio_seconds=self.audio_s
                        )
                    continue
                limit = settings.STREAM_MAX_SESSION_SECONDS
                raise Close(1008, "max_duration", f"Streams last at most {limit} s; open a new one.") from None
            if kind == "gone":
                if value == 1012:  # uvicorn is stopping (SIGTERM): settle what was delivered
                    raise Close(1012, "server_shutdown", "The stream worker is stopping.", send_error=False)
                if self.utterance_open:
                    raise Close(value, "client_gone", "The client left mid-utterance.", send_error=False)
                return
            if kind == "limit":
                raise value
            if kind == "text":
                await self._on_text(value)
            else:
                chunks = [value]
                while not self.queue.empty() and self.queue._queue[0][0] == "audio":  # drain queued audio at once
                    chunks.append(self.queue.get_nowait()[1])
                await self._on_audio(b"".join(chunks))

    async def _on_text(self, text: str) -> None:
        try:
            message = proto.parse_message(text)
            first = self.config is None
            tenant = self.caller.tenant
            end_silence = settings.STREAM_END_SILENCE_MS
            config = await self.server.db(
                proto.apply_config, message, self.config, tenant=tenant, end_silence_ms=end_silence
            )
        except proto.ProtocolError as exc:
            raise Close(1008, "bad_request", str(exc)) from None
        if first:
            await self._open(config)
            await self._speakers_open(message)
        elif not self.utterance_open:
            self.config = config
            self.recognizer = None  # the next utterance uses the new settings
        if proto.ends_utterance(message) and not first:
            await self._finish(ack=bool(message.get("is_end")))

    async def _open(self, config: proto.FunasrConfig) -> None:
        self.config = config
        try:
            engine = await self.server.engine_ready()
        except EngineUnavailable as exc:
            raise Close(1011, "model_unavailable", str(exc)[:200]) from None
        self.engine = engine
        try:
            self.session = await self.server.db(
                services.stream_session_open,
                caller=self.caller,
                protocol=self.protocol,
                mode=config.mode,
                wav_name=config.wav_name,
                model=settings.ASR_MODEL,
            )
            metrics.STREAM_SESSIONS_ACTIVE.inc()
        except TooManyStreams as exc:
            raise Close(1008, "too_many_streams", exc.message) from None
        except InsufficientBalance as exc:
            raise Close(1008, "insufficient_balance", exc.message) from None
        self.covered_s = services.covered_seconds(self.session)

    async def _speakers_open(self, message: dict) -> None:
        from portal.errors import DomainError
        from streaming.speakers import stream_speakers_for

        try:
            self.speakers = await self.server.db(stream_speakers_for, message, tenant=self.caller.tenant)
            if self.speakers is not None:
                await self._run(self.speakers.engine.load)
        except DomainError as exc:
            raise Close(1008, exc.code, exc.message) from None
        except EngineUnavailable as exc:
            raise Close(1011, "model_unavailable", str(exc)[:200]) from None

    def _samples(self, data: bytes) -> np.ndarray:
        data = self.carry + data
        if len(data) % 2:
            data, self.carry = data[:-1], data[-1:]
        else:
            self.carry = b""
        samples = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
        if self.config.audio_fs != SAMPLE_RATE:
            if self.resampler is None:
                import soxr

                self.resampler = soxr.ResampleStream(self.config.audio_fs, SAMPLE_RATE, 1, dtype="float32")
            samples = self.resampler.resample_chunk(samples)
        return samples

    async def _on_audio(self, data: bytes) -> None:
        self.pending_bytes -= len(data)
        samples = self._samples(data)
        if samples.shape[0] == 0:
            return
        self.utterance_open = True
        new_s = samples.shape[0] / SAMPLE_RATE
        short = None
        while self.audio_s + new_s > self.covered_s:
            try:
                self.session = await self.server.db(
                    services.stream_session_extend, session_id=self.session.pk, model=settings.ASR_MODEL
                )
                self.covered_s = services.covered_seconds(self.session)
            except InsufficientBalance as exc:
                short = exc
                samples = samples[: max(0, int((self.covered_s - self.audio_s) * SAMPLE_RATE))]
                break
        await self._recognize(samples)
        if short is not None:
            await self._finish(ack=False)
            raise Close(1008, "insufficient_balance", short.message)

    async def _run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.engine.executor, fn, *args)

    def _recognizer(self):
        if self.recognizer is None:
            from transcription.streaming import StreamRecognizer

            self.offset_s = self.audio_s
            self.recognizer = StreamRecognizer(self.engine, self.recognizer_settings())
            if self.speakers is not None:
                self.speakers.restart()
        return self.recognizer

    async def _recognize(self, samples: np.ndarray) -> None:
        if samples.shape[0]:
            recognizer = self._recognizer()
            if self.speakers is not None:
                self.speakers.push(samples)
            self.audio_s += samples.shape[0] / SAMPLE_RATE
            await self._deliver(await self.recognizer_call(recognizer.feed, samples), last=False)

    async def _finish(self, *, ack: bool) -> None:
        """The client ended the utterance: decode what is open, answer, acknowledge if asked."""
        if self.resampler is not None:
            tail = self.resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
            self.resampler = None
            await self._recognize(tail)
        events = await self.recognizer_call(self._recognizer().finish)
        self.utterance_open = False
        self.carry = b""
        await self._deliver(events, last=True)
        if ack:
            await self.send_json(proto.end_ack(self.config))
        if self.recognizer is not None and self.recognizer.settings != self.recognizer_settings():
            self.recognizer = None

    async def _deliver(self, events, *, last: bool) -> None:
        finals = [i for i, e in enumerate(events) if e.kind == "final"]
        speakers = await self._run(self.speakers.label, events) if self.speakers is not None and finals else {}
        for i, event in enumerate(events):
            last_final = bool(last and finals and i == finals[-1])
            message = proto.result_message(self.config, event, last=last_final, offset_s=self.offset_s)
            if message is not None and i in speakers:
                message.update(speakers[i])
            if message is not None and not self.warned:
                warning = proto.hotwords_warning(self.config, offline_supports=self.engine.offline_hotwords)
                self.warned = bool(warning)
                message.update({"warning": warning} if warning else {})
            sent = message is None or await self.send_json(message)
            if event.kind == "final" and sent:
                await self.server.db(
                    services.stream_session_count,
                    session_id=self.session.pk,
                    text=event.text,
                    audio_seconds=self.audio_s,
                )
