"""The web tier's `/v1/realtime` WebSocket: relayed to the stream worker, which owns the models.

The web tier never loads a model, so `OpenAI(base_url="http://HOST:PORT/v1")` reaching the Realtime API on the
main port is a relay: the handshake (path, query, Authorization, OpenAI-Beta, offered subprotocols) is repeated
to STREAM_URL and the client is accepted only once the stream worker accepted (its refusal, e.g. a 401, is
passed on as is); then frames are copied both ways until either side closes, with the close code passed on.
Bounded: REALTIME_PROXY_MAX_CONNECTIONS per web process (more: 503), a connect timeout, a message size limit;
the stream worker enforces everything else (idle, duration, speed, money). Other WebSocket paths are refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from django.conf import settings

logger = logging.getLogger(__name__)

FORWARDED_HEADERS = (b"authorization", b"openai-beta", b"user-agent")
CONNECT_TIMEOUT_S = 10.0
MAX_MESSAGE_BYTES = 16 * 1024 * 1024


def upstream_base() -> str:
    """ws://host:port of the stream worker: STREAM_URL, else STREAM_HOST:STREAM_PORT (a wildcard host: loopback)."""
    if settings.STREAM_URL:
        return settings.STREAM_URL.rstrip("/")
    wildcard = settings.STREAM_HOST in ("", "::", "0.0.0.0")  # noqa: S104  (a listen address, not a bind)
    host = "127.0.0.1" if wildcard else settings.STREAM_HOST
    return f"ws://{host}:{settings.STREAM_PORT}"


def is_realtime(scope) -> bool:
    return scope.get("path", "").rstrip("/") in ("/v1/realtime", "/api/v1/realtime")


class RealtimeProxy:
    """ASGI middleware: WebSockets to /v1/realtime go to the stream worker; everything else to `app`."""

    def __init__(self, app) -> None:
        self.app = app
        self.active = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            return await self.app(scope, receive, send)
        if (await receive())["type"] != "websocket.connect":
            return None
        if not is_realtime(scope):
            return await _deny(scope, send, 404, "not_found", "No WebSocket here; the Realtime API is /v1/realtime.")
        if self.active >= settings.REALTIME_PROXY_MAX_CONNECTIONS:
            return await _deny(scope, send, 503, "server_busy", "Too many Realtime connections; try again later.")
        self.active += 1
        try:
            await self._relay(scope, receive, send)
        finally:
            self.active -= 1
        return None

    async def _relay(self, scope, receive, send) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidStatus

        query = (scope.get("query_string") or b"").decode("latin-1")
        url = upstream_base() + scope["path"] + (f"?{query}" if query else "")
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"] if k in FORWARDED_HEADERS]
        client = scope.get("client")
        if client:
            headers.append(("X-Forwarded-For", str(client[0])))
        try:
            upstream = await connect(
                url,
                additional_headers=headers,
                subprotocols=scope.get("subprotocols") or None,
                open_timeout=CONNECT_TIMEOUT_S,
                max_size=MAX_MESSAGE_BYTES,
                compression=None,
                user_agent_header=None,
                proxy=None,
            )
        except InvalidStatus as exc:  # the stream worker refused the handshake: pass its answer on
            response = exc.response
            return await _respond(scope, send, response.status_code, bytes(response.body or b""))
        except (OSError, TimeoutError) as exc:
            logger.warning("Realtime relay: the stream worker at %s is unreachable: %s", upstream_base(), exc)
            message = "The live transcription service is not reachable; try again later."
            return await _deny(scope, send, 503, "stream_unavailable", message)
        accept = {"type": "websocket.accept"}
        if upstream.subprotocol:
            accept["subprotocol"] = upstream.subprotocol
        await send(accept)
        async with upstream:
            inbound = asyncio.create_task(_client_to_upstream(receive, upstream))
            outbound = asyncio.create_task(_upstream_to_client(upstream, send))
            done, pending = await asyncio.wait({inbound, outbound}, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            for task in done:
                if task.exception() is not None and not isinstance(task.exception(), OSError | RuntimeError):
                    logger.warning("Realtime relay ended with %r", task.exception())


async def _client_to_upstream(receive, upstream) -> None:
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            code = message.get("code", 1000)
            await upstream.close(code=code if code in (1000, 1001) or 3000 <= code < 5000 else 1000)
            return
        if message.get("text") is not None:
            await upstream.send(message["text"])
        elif message.get("bytes") is not None:
            await upstream.send(message["bytes"])


async def _upstream_to_client(upstream, send) -> None:
    from websockets.exceptions import ConnectionClosed

    try:
        async for message in upstream:
            if isinstance(message, str):
                await send({"type": "websocket.send", "text": message})
            else:
                await send({"type": "websocket.send", "bytes": message})
    except ConnectionClosed:
        pass
    close = upstream.close_rcvd
    code = close.code if close is not None and close.code not in (1005, 1006) else 1011
    if close is None and upstream.close_sent is not None:
        code = upstream.close_sent.code
    with contextlib.suppress(OSError, RuntimeError):
        await send({"type": "websocket.close", "code": code, "reason": (close.reason if close else "")[:120]})


async def _respond(scope, send, status: int, body: bytes) -> None:
    if "websocket.http.response" in (scope.get("extensions") or {}):
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
    else:  # the server cannot answer with a status: a refused handshake (403)
        await send({"type": "websocket.close", "code": 1008})


async def _deny(scope, send, status: int, code: str, message: str) -> None:
    kind = "server_error" if status >= 500 else "invalid_request_error"
    body = json.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}}).encode()
    await _respond(scope, send, status, body)
