"""The web tier's /v1/realtime relay without a stream worker: bounded, clear refusals (no server needed)."""

from __future__ import annotations

import asyncio
import json

from portal.realtime_proxy import RealtimeProxy


def handshake(app, path: str = "/v1/realtime") -> list[dict]:
    sent: list[dict] = []
    scope = {"type": "websocket", "path": path, "query_string": b"intent=transcription", "headers": [],
             "subprotocols": [], "extensions": {"websocket.http.response": {}}, "client": ("127.0.0.1", 5)}  # fmt: skip

    async def receive():
        return {"type": "websocket.connect"}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def answer(sent: list[dict]) -> tuple[int, dict]:
    return sent[0]["status"], json.loads(sent[1]["body"])


def unused_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_stream_worker_is_a_503_in_openai_shape(settings):
    settings.STREAM_URL = f"ws://127.0.0.1:{unused_port()}"
    status, body = answer(handshake(RealtimeProxy(None)))
    assert status == 503
    assert body["error"]["code"] == "stream_unavailable" and body["error"]["type"] == "server_error"


def test_connection_limit_and_other_paths(settings):
    settings.REALTIME_PROXY_MAX_CONNECTIONS = 0
    status, body = answer(handshake(RealtimeProxy(None)))
    assert (status, body["error"]["code"]) == (503, "server_busy")
    status, body = answer(handshake(RealtimeProxy(None), path="/ws"))
    assert (status, body["error"]["code"]) == (404, "not_found")


def test_http_goes_to_django():
    seen = []

    async def app(scope, receive, send):
        seen.append(scope["type"])

    asyncio.run(RealtimeProxy(app)({"type": "http", "path": "/v1/realtime"}, None, None))
    assert seen == ["http"]
