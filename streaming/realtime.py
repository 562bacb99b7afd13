"""One OpenAI Realtime transcription connection (`/v1/realtime?intent=transcription`) on the stream worker.

The same session, limits, recognizer and billing as a FunASR connection (streaming.connection); only the wire
differs: JSON events both ways, audio as base64 PCM16 at 24 kHz (resampled to 16 kHz), the session configured by
`session.update` / `transcription_session.update`, and items: each utterance (a server-VAD segment, or what the
client committed) is one item with `committed`, `delta`s and one `completed` carrying its usage, or `failed` when
its recognition fails (the session goes on). A bad event is answered with an `error` event and the session goes
on; limits, an empty balance and a full worker end it (error, then close).
"""

from __future__ import annotations

import asyncio
import json
import logging

from django.conf import settings

from billing import tokens as token_rule
from streaming import realtime_protocol as rt
from streaming import services
from streaming.connection import Close, FunasrConnection

logger = logging.getLogger(__name__)

RECOGNITION_FAILED = "Recognition of this audio failed on the server; it was not charged. Send the audio again."


class _Item:
    def __init__(self) -> None:
        self.id = rt.new_id("item")
        self.committed = False
        self.deltas = 0


class RealtimeConnection(FunasrConnection):
    protocol = "openai_realtime"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.item: _Item | None = None
        self.previous_item_id: str | None = None
        self.buffered_s = 0.0  # audio appended since the last commit or clear
        self.full_reported = False

    # --- hooks ------------------------------------------------------------------------------------------
    def accept_message(self, offered: list[str]) -> dict:
        return {"type": "websocket.accept", **({"subprotocol": "realtime"} if "realtime" in offered else {})}

    async def _deny(self, status: int, code: str, message: str) -> None:
        """The handshake refused with OpenAI's error body (the SDK raises it with the status)."""
        body = json.dumps({"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}})
        if "websocket.http.response" in (self.scope.get("extensions") or {}):
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await self._send({"type": "websocket.http.response.start", "status": status, "headers": headers})
            await self._send({"type": "websocket.http.response.body", "body": body.encode()})
        else:
            await self._send({"type": "websocket.close", "code": 1008})
        self.closed = True

    def error_event(self, key: str, message: str) -> dict:
        return rt.error_event(message, code=key)

    async def refuse_full(self, message: str) -> None:
        await self.send_json(rt.error_event(message, code="server_full"))

    async def recognizer_call(self, fn, *args):
        """A failed recognition fails the item it was for (`...transcription.failed`), not the session: the
        recognizer is dropped with its audio, and the next audio starts a fresh one."""
        try:
            return await super().recognizer_call(fn, *args)
        except Exception:
            logger.exception("Stream %s: recognition failed", self.session.pk)
            item = self.item = self.item or _Item()
            if not item.committed:
                await self._committed(item)
            await self._drop_recognizer()
            self.item = None
            await self.send_json(rt.transcription_failed(item.id, RECOGNITION_FAILED))
            return []

    def recognizer_settings(self):
        return rt.recognizer_settings(self.config)

    async def begin(self) -> None:
        beta = any(
            name.lower() == b"openai-beta" and b"realtime=v1" in value.lower()
            for name, value in self.scope.get("headers") or []
        )
        self.configured = True  # the session has defaults: audio may come at once
        await self._open(rt.RealtimeConfig(beta=beta, silence_duration_ms=settings.STREAM_END_SILENCE_MS))
        kind = "transcription_session.created" if beta else "session.created"
        await self.send_json(rt.event(kind, session=rt.session_object(self.config, str(self.session.pk))))

    # --- reading ----------------------------------------------------------------------------------------
    async def _reader(self) -> None:
        """Receive forever; decode appends here (limits are checked on the audio bytes); queue the rest."""
        idle = settings.STREAM_IDLE_SECONDS
        while True:
            try:
                message = await asyncio.wait_for(self._receive(), timeout=idle)
            except TimeoutError:
                await self.queue.put(("limit", Close(1008, "idle_timeout", f"No event for {idle} s.")))
                return
            if message["type"] == "websocket.disconnect":
                await self.queue.put(("gone", message.get("code", 1005)))
                return
            text, event = message.get("text"), None
            try:
                if text is None:
                    raise rt.ProtocolError("Binary frames are not part of this protocol; send JSON events.")
                event = rt.parse_event(text)
                if event["type"] == "input_audio_buffer.append":
                    data = rt.decode_audio(event)
                    problem = self._audio_problem(len(data))
                    if problem is not None:
                        await self.queue.put(("limit", problem))
                        return
                    self.received_bytes += len(data)
                    self.pending_bytes += len(data)
                    await self.queue.put(("audio", data))
                else:
                    await self.queue.put(("text", event))
            except rt.ProtocolError as exc:
                exc.event_id = rt.client_event_id(event)
                await self.queue.put(("text", exc))

    # --- events -----------------------------------------------------------------------------------------
    async def _on_text(self, value) -> None:
        if isinstance(value, rt.ProtocolError):
            await self.send_json(
                rt.error_event(value.message, code=value.code, param=value.param, event_id=value.event_id)
            )
            return
        event_id = rt.client_event_id(value)
        try:
            kind = value["type"]
            if kind in ("session.update", "transcription_session.update"):
                await self._update(value)
            elif kind == "input_audio_buffer.commit":
                await self._commit()
            elif kind == "input_audio_buffer.clear":
                await self._clear()
        except rt.ProtocolError as exc:
            await self.send_json(rt.error_event(exc.message, code=exc.code, param=exc.param, event_id=event_id))

    async def _update(self, message: dict) -> None:
        tenant = self.caller.tenant
        config = await self.server.db(rt.apply_update, message, self.config, tenant=tenant)
        self.config = config
        wanted, recognizer = self.recognizer_settings(), self.recognizer
        if self.item is None and recognizer is not None and recognizer.settings != wanted:
            if not (wanted.segmented or recognizer.settings.segmented):
                recognizer.settings = wanted  # manual commits: the buffer is kept and decoded with the new options
            else:
                await self._drop_recognizer()  # between utterances: the next audio uses the new settings at once
        session = rt.session_object(config, str(self.session.pk))
        kind = (
            "transcription_session.updated" if message["type"] == "transcription_session.update" else "session.updated"
        )
        await self.send_json(rt.event(kind, session=session))

    async def _commit(self) -> None:
        if self.buffered_s * 1000 < rt.MIN_COMMIT_MS:
            raise rt.ProtocolError(
                f"Error committing input audio buffer: buffer too small. Expected at least {rt.MIN_COMMIT_MS}ms of "
                f"audio, but buffer only has {self.buffered_s * 1000:.2f}ms of audio.",
                code="input_audio_buffer_commit_empty",
            )
        item = self.item = self.item or _Item()
        if not item.committed:
            await self._committed(item)
        await self._finish(ack=False)

    async def _clear(self) -> None:
        await self._drop_recognizer()
        self.item = None
        await self.send_json(rt.event("input_audio_buffer.cleared"))

    async def _drop_recognizer(self) -> None:
        """Forget the uncommitted audio (and the resampler's tail): the next append starts a fresh buffer."""
        self.recognizer, self.resampler, self.carry = None, None, b""
        self.buffered_s, self.full_reported = 0.0, False
        self.utterance_open = False

    async def _committed(self, item: _Item) -> None:
        item.committed = True
        self.buffered_s, self.full_reported = 0.0, False
        previous, self.previous_item_id = self.previous_item_id, item.id
        await self.send_json(rt.event("input_audio_buffer.committed", item_id=item.id, previous_item_id=previous))

    # --- audio and results ------------------------------------------------------------------------------
    async def _on_audio(self, data: bytes) -> None:
        seconds = len(data) / (2 * self.config.audio_fs)
        limit = settings.REALTIME_MAX_UNCOMMITTED_SECONDS
        if not self.config.vad and self.buffered_s + seconds > limit:
            self.pending_bytes -= len(data)  # refused, not buffered: the client commits or clears, then goes on
            message = (
                f"The input audio buffer holds {self.buffered_s:.0f} s, the most one item may have "
                f"({limit} s); commit or clear it before appending more."
            )
            if not self.full_reported:  # once per buffer, not per append
                self.full_reported = True
                await self.send_json(rt.error_event(message, code="input_audio_buffer_full"))
            return
        self.buffered_s += seconds
        await super()._on_audio(data)

    def _ms(self, seconds: float) -> int:
        return int(round((self.offset_s + seconds) * 1000))

    async def _deliver(self, events, *, last: bool) -> None:
        for e in events:
            if e.kind == "speech_start":
                self.item = _Item()
                await self.send_json(
                    rt.event(
                        "input_audio_buffer.speech_started", audio_start_ms=self._ms(e.start_s), item_id=self.item.id
                    )
                )
            elif e.kind == "speech_stop":
                item = self.item = self.item or _Item()
                if not item.committed:
                    stopped = rt.event(
                        "input_audio_buffer.speech_stopped", audio_end_ms=self._ms(e.end_s), item_id=item.id
                    )
                    await self.send_json(stopped)
                    await self._committed(item)
            elif e.kind == "partial":
                item = self.item = self.item or _Item()
                item.deltas += 1
                await self.send_json(self._delta(item, e.text))
            elif e.kind == "final":
                await self._completed(e.text)
        self.utterance_open = self.item is not None or self.buffered_s > 0
        if self.item is None and self.recognizer is not None and self.recognizer.settings != self.recognizer_settings():
            self.recognizer = None  # settings changed during the utterance: the next one uses them

    def _delta(self, item: _Item, text: str) -> dict:
        return rt.event(
            "conversation.item.input_audio_transcription.delta", item_id=item.id, content_index=0, delta=text
        )

    async def _completed(self, text: str) -> None:
        item = self.item = self.item or _Item()
        if not item.committed:
            await self._committed(item)
        if text and not item.deltas:  # no partials (no online model, or a committed buffer): the text as one delta
            await self.send_json(self._delta(item, text))
        tokens = token_rule.count(text) if text else 0
        completed = rt.event(
            "conversation.item.input_audio_transcription.completed",
            item_id=item.id,
            content_index=0,
            transcript=text,
            usage=rt.usage(tokens),
        )
        self.item = None
        if await self.send_json(completed) and text:
            await self.server.db(
                services.stream_session_count, session_id=self.session.pk, text=text, audio_seconds=self.audio_s
            )
