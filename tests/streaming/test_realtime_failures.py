"""Realtime failures as the SDK's realtime client sees them: a failed recognition fails its item (the session goes
on), and a full worker says so with an `error` event before its 1013 close.

The stream worker runs in this process (uvicorn in a thread, the tiny SenseVoice, no online model), so a fault can
be put into the recognizer; every event is validated strictly with the SDK's types (test_realtime.recv).
"""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest
import uvicorn
import websockets
from django.db import connection

from tests.conftest import wait_for
from tests.streaming.conftest import free_port
from tests.streaming.test_funasr_ws import assert_stream_money
from tests.streaming.test_realtime import PARK, all_closed, chunks, client, park_pcm_24k, recv, until
from transcription.streaming import StreamRecognizer

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def park_24k() -> bytes:
    return park_pcm_24k()


@pytest.fixture
def funded(tenant, api_key, grant):
    grant(tenant, 10_000)
    return api_key[1]


@pytest.fixture
def local_worker(transactional_db, settings):
    settings.STREAM_ONLINE_MODEL = ""  # finals only: no streaming Paraformer to build
    settings.STREAM_DEVICE, settings.STREAM_REPLICAS, settings.STREAM_MAX_SESSIONS = "cpu", 1, 1
    from streaming.server import StreamServer

    app = StreamServer()
    pooled = app.db

    async def db(fn, /, *args, **kwargs):  # each call closes its connection: none is left open at the flush
        def call():
            try:
                return fn(*args, **kwargs)
            finally:
                connection.close()

        return await pooled(call)

    app.db = db
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, ws="websockets-sansio", lifespan="on", log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="test-stream-worker", daemon=True)
    thread.start()
    wait_for(lambda: server.started and app.loaded.is_set(), timeout=120, message="the stream worker to load")
    yield SimpleNamespace(port=port, app=app)
    server.should_exit = True
    thread.join(timeout=15)
    app.db_executor.shutdown(wait=True)
    app.engine.executor.shutdown(wait=True)


def test_a_failed_recognition_fails_its_item_and_the_session_goes_on(
    local_worker, tenant, funded, park_24k, monkeypatch
):
    real, calls = StreamRecognizer.finish, []

    def finish(self):  # the first commit's recognition fails in the model
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("the model choked on this audio")
        return real(self)

    monkeypatch.setattr(StreamRecognizer, "finish", finish)
    with client(local_worker, funded).realtime.connect(extra_query={"intent": "transcription"}) as connection:
        recv(connection)
        connection.session.update(session={"type": "transcription", "audio": {"input": {"turn_detection": None}}})
        recv(connection)
        for audio in chunks(park_24k):
            connection.input_audio_buffer.append(audio=audio)
        connection.input_audio_buffer.commit()
        failed = until(connection, "conversation.item.input_audio_transcription.failed")
        for audio in chunks(park_24k):  # the same session recognizes the next item
            connection.input_audio_buffer.append(audio=audio)
        connection.input_audio_buffer.commit()
        completed = until(connection, "conversation.item.input_audio_transcription.completed")
    assert [e["type"] for e in failed] == [
        "input_audio_buffer.committed",
        "conversation.item.input_audio_transcription.failed",
    ]
    item = failed[0]["item_id"]
    assert failed[1]["item_id"] == item and failed[1]["content_index"] == 0
    assert (failed[1]["error"]["type"], failed[1]["error"]["code"]) == ("server_error", "recognition_failed")
    assert "not charged" in failed[1]["error"]["message"]
    assert completed[0]["type"] == "input_audio_buffer.committed" and completed[0]["item_id"] != item
    assert completed[0]["previous_item_id"] == item
    assert PARK[:4] in completed[-1]["transcript"]
    [row] = all_closed(tenant, 1)
    assert (row.finals, row.billed_tokens) == (1, completed[-1]["usage"]["output_tokens"])  # the failed item: free
    assert_stream_money(tenant)


def test_a_full_worker_sends_an_error_event_then_closes_1013(local_worker, tenant, funded):
    with client(local_worker, funded).realtime.connect(extra_query={"intent": "transcription"}) as first:
        assert recv(first)["type"] == "session.created"  # the worker's one stream
        with client(local_worker, funded).realtime.connect(extra_query={"intent": "transcription"}) as second:
            error = recv(second)
            with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
                second.recv_bytes()
    assert error["type"] == "error"
    assert (error["error"]["type"], error["error"]["code"]) == ("server_error", "server_full")
    assert "try again later" in error["error"]["message"]
    assert closed.value.rcvd.code == 1013
    [row] = all_closed(tenant, 1)  # the refused one opened no session
    assert row.protocol == "openai_realtime"
    assert_stream_money(tenant)
