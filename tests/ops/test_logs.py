"""Logs: JSON lines with request id, tenant, job id and durations; job lines with timings; one line for a
model that cannot load."""

from __future__ import annotations

import io
import json
import logging
import logging.config

import pytest

from portal.logs import job_logging, log_tenant, logging_config
from portal.request_id import request_id_var
from tests.audio_helpers_core import tone_wav
from transcription import services

pytestmark = pytest.mark.django_db


@pytest.fixture
def json_lines():
    """Records of the root logger, formatted by the production (JSON) configuration, as parsed dicts."""
    config = logging_config(fmt="json", level="INFO")
    stream = io.StringIO()
    handler_config = dict(config["handlers"]["console"], stream=stream)
    logging.config.dictConfig({**config, "handlers": {"console": handler_config}, "incremental": False})
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)


def test_json_line_carries_the_context(json_lines):
    token = request_id_var.set("req-123")
    try:
        with job_logging("job-9"):
            log_tenant(42)
            logging.getLogger("tingxie.test").info("hello %s", "there", extra={"duration_ms": 12.5})
    finally:
        request_id_var.reset(token)
    (line,) = [r for r in json_lines() if r["logger"] == "tingxie.test"]
    assert line["message"] == "hello there" and line["level"] == "INFO"
    assert (line["request_id"], line["tenant"], line["job_id"], line["duration_ms"]) == ("req-123", "42", "job-9", 12.5)
    assert "time" in line


def test_requests_and_jobs_log_their_events(api_client, tenant, grant, json_lines):
    grant(tenant, 1000)
    response = api_client.post(
        "/api/v1/transcriptions", {"file": io.BytesIO(tone_wav(1.0))}, format="multipart",
        HTTP_X_REQUEST_ID="rid-777",
    )  # fmt: skip
    job_id = response.json()["id"]
    claim = services.transcription_claim(transcription_id=job_id)
    services.transcription_finalize(claim=claim, text="two words", segments=[], language="en", duration_s=1.0)
    lines = json_lines()
    (request,) = [r for r in lines if r["logger"] == "portal.request"]
    assert request["request_id"] == "rid-777" and request["tenant"] == str(tenant.pk)
    assert request["status"] == 202 and request["method"] == "POST" and request["duration_ms"] > 0
    events = {r["event"]: r for r in lines if r.get("event", "").startswith("job_")}
    assert set(events) == {"job_submitted", "job_claimed", "job_finished"}
    assert all(e["job_id"] == job_id and e["tenant"] == str(tenant.pk) for e in events.values())
    assert events["job_submitted"]["request_id"] == "rid-777" and events["job_submitted"]["held_tokens"] > 0
    assert events["job_claimed"]["queue_wait_ms"] >= 0
    done = events["job_finished"]
    assert done["status"] == "succeeded" and done["billed_tokens"] == 2
    assert done["end_to_end_ms"] >= done["processing_ms"] >= 0


def test_unloadable_model_dir_logs_one_clear_line(tmp_path, caplog):
    from transcription.engines.base import EngineUnavailable
    from transcription.engines.funasr import FunASREngine

    (tmp_path / "config.yaml").write_text("model: NoSuchArchitecture\n")
    engine = FunASREngine(model=str(tmp_path), device="cpu")
    with caplog.at_level(logging.INFO), pytest.raises(EngineUnavailable):
        engine.load()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    message = errors[0].getMessage()
    assert str(tmp_path) in message and "not a model funasr can load" in message and "Set ASR_MODEL" in message
    assert "\n" not in message


def test_load_failure_messages_name_the_cause():
    from transcription.engines.load_errors import load_failure_message

    hub = load_failure_message(
        model="iic/SenseVoiceSmall", local=False, device="cuda:0", exc=RuntimeError("model is not registered"),
        output="Download: failed!: Connection failed: HTTPSConnectionPool(host='modelscope.cn', port=443): "
        "Max retries exceeded (Caused by NameResolutionError)",
    )  # fmt: skip
    assert "modelscope.cn is unreachable" in hub and "modelscope download --model iic/SenseVoiceSmall" in hub
    missing = load_failure_message(
        model="iic/Nope", local=False, device="cpu", exc=RuntimeError("404 Client Error: model does not exist"),
        output="",
    )  # fmt: skip
    assert "the hub has no model 'iic/Nope'" in missing
