"""Real responses of every API operation validate against the published OpenAPI schema (/api/schema/).

The schema is what customers generate clients from: every operation is exercised here, its JSON bodies
(successes and errors) are validated with jsonschema, and every status seen must be documented.
"""

from __future__ import annotations

import re

import jsonschema
import pytest
import yaml
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from billing.services import tokens_grant
from streaming import services as stream_services
from streaming.auth import Caller
from tests.audio_helpers_core import tone_wav
from tests.billing.conftest import fake_stripe, stripe_settings, token_packs  # noqa: F401  (fixtures)
from transcription import services

pytestmark = pytest.mark.django_db


def _to_json_schema(node):
    """OpenAPI 3.0 -> JSON Schema: `nullable: true` becomes a union with null."""
    if isinstance(node, list):
        return [_to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _to_json_schema(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable"):
        return {"anyOf": [out, {"type": "null"}]}
    return out


class Contract:
    def __init__(self, spec: dict) -> None:
        self.spec = spec
        self.components = _to_json_schema(spec["components"])
        self.seen: set[tuple[str, str]] = set()
        self.routes = [(re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$"), path) for path in spec["paths"]]

    def operation(self, method: str, url: str) -> tuple[str, dict]:
        path = url.split("?")[0]
        for pattern, template in self.routes:
            if pattern.match(path) and method in self.spec["paths"][template]:
                return template, self.spec["paths"][template][method]
        raise AssertionError(f"{method.upper()} {path} is not in the OpenAPI schema")

    def check(self, method: str, url: str, response) -> None:
        template, operation = self.operation(method, url)
        self.seen.add((method, template))
        status = str(response.status_code)
        documented = operation["responses"]
        assert status in documented, f"{method.upper()} {template} answered undocumented {status}"
        content = documented[status].get("content")
        if response.status_code == 204 or not content:
            return
        media = response["Content-Type"].split(";")[0].strip()
        assert media in content, f"{method.upper()} {template} {status}: {media} not in {list(content)}"
        if media != "application/json":
            return
        schema = _to_json_schema(content[media]["schema"])
        schema = {**schema, "components": self.components}
        jsonschema.validate(response.json(), schema, cls=jsonschema.Draft202012Validator)


@pytest.fixture
def contract(client):
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return Contract(yaml.safe_load(response.content))


@pytest.fixture
def call(api_client, contract):
    def _call(method: str, url: str, client: APIClient | None = None, **kwargs):
        response = getattr(client or api_client, method)(url, **kwargs)
        contract.check(method, url, response)
        return response

    return _call


def _upload(**fields):
    return {"file": SimpleUploadedFile("clip.wav", tone_wav(1.0), content_type="audio/wav"), **fields}


def test_every_operation_answers_what_the_schema_documents(
    contract,
    call,
    tenant,
    api_key,
    other_client,
    fake_stripe,  # noqa: F811
    token_packs,  # noqa: F811
    settings,
):
    tokens_grant(tenant=tenant, tokens=5_000, memo="contract test")
    created = call("post", "/api/v1/transcriptions", data=_upload(language="zh"), format="multipart")
    assert created.status_code == 202
    tid = created.json()["id"]
    claim = services.transcription_claim(transcription_id=tid)
    services.transcription_finalize(
        claim=claim, text="你好 world", segments=[{"start": 0.0, "end": 1.0, "text": "你好 world"}],
        language="zh", duration_s=1.0,
    )  # fmt: skip
    queued = call("post", "/api/v1/transcriptions", data=_upload(hotwords="a"), format="multipart").json()["id"]

    assert call("get", "/api/v1/transcriptions").status_code == 200
    assert call("get", "/api/v1/transcriptions?status=succeeded&page_size=1").status_code == 200
    assert call("get", f"/api/v1/transcriptions/{tid}").status_code == 200
    assert call("get", f"/api/v1/transcriptions/{tid}?wait=0").status_code == 200
    assert call("get", f"/api/v1/transcriptions/{tid}/transcript?format=srt").status_code == 200
    assert call("get", f"/api/v1/transcriptions/{tid}/receipt").status_code == 200
    assert call("post", f"/api/v1/transcriptions/{queued}/cancel").status_code == 200
    assert call("post", f"/api/v1/transcriptions/{tid}/cancel").status_code == 409
    assert call("delete", f"/api/v1/transcriptions/{queued}").status_code == 204
    assert call("get", "/api/v1/balance").status_code == 200
    assert call("get", "/api/v1/ledger").status_code == 200
    assert call("get", "/api/v1/usage").status_code == 200
    assert call("get", "/api/v1/billing/packs").status_code == 200
    assert call("get", "/api/v1/billing/invoices").status_code == 200
    assert call("post", "/api/v1/billing/checkout", data={"pack": "starter"}, format="json").status_code == 201
    period = created.json()["created_at"][:7]
    assert call("get", f"/api/v1/billing/statements/{period}").status_code == 200
    caller = Caller(tenant=tenant, api_key=api_key[0])
    stream = stream_services.stream_session_open(caller=caller, protocol="funasr", mode="2pass")
    stream_services.stream_session_count(session_id=stream.pk, text="你好", audio_seconds=1.0)
    assert call("get", f"/api/v1/streams/{stream.pk}").status_code == 200  # open: holds a minute
    stream_services.stream_session_close(session_id=stream.pk, reason="completed")
    assert call("get", "/api/v1/streams").status_code == 200
    assert call("get", "/api/v1/streams?status=closed&page_size=1").status_code == 200
    assert call("get", f"/api/v1/streams/{stream.pk}", client=other_client).status_code == 404
    assert call("get", "/api/v1/streams?status=bogus").status_code == 400

    # Errors, in the one documented shape.
    assert call("get", f"/api/v1/transcriptions/{tid}", client=other_client).status_code == 404
    assert call("get", "/api/v1/transcriptions/not-a-uuid").status_code == 404
    assert call("get", "/api/v1/balance", client=APIClient()).status_code == 401
    assert call("get", "/api/v1/ledger?kind=bogus").status_code == 400
    assert call("post", "/api/v1/transcriptions", data={"language": "zh"}, format="multipart").status_code == 400
    assert call("get", "/api/v1/billing/statements/0000-13").status_code in (400, 404)
    assert call("post", "/api/v1/billing/checkout", data={"pack": "nope"}, format="json").status_code == 400
    tokens_grant(tenant=tenant, tokens=-4_990, memo="drain", kind="adjustment")
    assert call("post", "/api/v1/transcriptions", data=_upload(itn="false"), format="multipart").status_code == 402

    # The OpenAI-compatible endpoint: a refused model and a wait that runs out (no worker here).
    openai = {"file": SimpleUploadedFile("a.wav", tone_wav(1.0), content_type="audio/wav")}
    assert (
        call("post", "/v1/audio/transcriptions", data={**openai, "model": "nope"}, format="multipart").status_code
        == 400
    )

    assert call("get", "/api/v1/webhook-secret").status_code == 200
    assert call("post", "/api/v1/webhook-secret/rotate").status_code == 200
    assert call("get", "/v1/models").status_code == 200
    assert call("get", "/v1/models/whisper-1").status_code == 200
    assert call("get", "/v1/models/nope").status_code == 404
    translation = {"file": SimpleUploadedFile("a.wav", tone_wav(1.0), content_type="audio/wav"), "model": "whisper-1"}
    assert call("post", "/v1/audio/translations", data=translation, format="multipart").status_code == 400
    _speaker_calls(call, other_client, settings)

    missing = {(m, p) for p, ops in contract.spec["paths"].items() for m in ops} - contract.seen
    assert not missing, sorted(missing)


def _speaker_calls(call, other_client, settings):
    """Speakers (API v1) and Xiaozhi's voiceprint service; no worker here, so enrollment stays pending."""
    settings.SPEAKER_WAIT_SECONDS = 0
    sample = lambda: SimpleUploadedFile("v.wav", tone_wav(2.0), content_type="audio/wav")  # noqa: E731
    created = call("post", "/api/v1/speakers", data={"name": "Ann", "file": sample()}, format="multipart")
    assert created.status_code == 201 and created.json()["status"] == "pending"
    sid = created.json()["id"]
    assert call("get", "/api/v1/speakers").status_code == 200
    assert call("get", f"/api/v1/speakers/{sid}").status_code == 200
    assert call("patch", f"/api/v1/speakers/{sid}", data={"name": "Ann Lee"}, format="json").status_code == 200
    assert call("get", f"/api/v1/speakers/{sid}", client=other_client).status_code == 404
    assert call("post", "/api/v1/speakers", data={"name": ""}, format="multipart").status_code == 400
    register = {"speaker_id": "test1", "file": sample()}
    assert call("post", "/voiceprint/register", data=register, format="multipart").status_code == 504
    identify = {"speaker_ids": "test1", "file": sample()}
    assert call("post", "/voiceprint/identify", data=identify, format="multipart").status_code == 504
    other = {"speaker_ids": "test1", "file": sample()}
    assert call("post", "/voiceprint/identify", client=other_client, data=other, format="multipart").status_code == 404
    assert call("get", "/voiceprint/health").status_code == 200
    assert call("delete", "/voiceprint/test1").status_code == 200
    assert call("delete", f"/api/v1/speakers/{sid}").status_code == 204


def test_lists_are_documented_as_paginated_objects(contract):
    for path in ("/api/v1/transcriptions", "/api/v1/ledger", "/api/v1/streams"):
        schema = contract.spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        ref = schema["$ref"].rsplit("/", 1)[-1]
        body = contract.spec["components"]["schemas"][ref]
        assert body["type"] == "object" and {"count", "next", "previous", "results"} <= set(body["properties"])


def test_upload_file_is_binary_and_errors_are_documented(contract):
    create = contract.spec["paths"]["/api/v1/transcriptions"]["post"]
    ref = create["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert contract.spec["components"]["schemas"][ref]["properties"]["file"]["format"] == "binary"
    for code in ("400", "401", "402", "413", "429"):
        assert create["responses"][code]["content"]["application/json"]["schema"]["$ref"].endswith("/Error")
