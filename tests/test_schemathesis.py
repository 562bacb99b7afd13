"""Schemathesis against a real uvicorn on the test database: no operation answers a 5xx, and every answer
conforms to the published schema (status codes, content types, bodies). Examples, coverage, fuzzing and
stateful (links) phases, a bounded number of examples per operation and a time budget for the whole run."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.fakes.stripe_server import FakeStripe
from tests.transcription.test_async_wait import Uvicorn

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "25"))
MAX_TIME = int(os.environ.get("SCHEMATHESIS_MAX_TIME", "90"))


@pytest.fixture
def server(transactional_db, tmp_path, monkeypatch):
    """The server, with the token packs seeded (the flush removed them) and Stripe answered by the fake."""
    from django.apps import apps

    importlib.import_module("billing.migrations.0004_seed_token_packs").seed(apps, None)
    stripe = FakeStripe().start()
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_fake")
    monkeypatch.setenv("STRIPE_API_BASE", stripe.url)
    # The writes are fuzzed, not throttled (429 is tested elsewhere).
    monkeypatch.setenv("API_SUBMIT_RATE", "100000/min")
    # No worker here: speaker enrollment/identification answers pending/504 after this wait, not after 30 s.
    monkeypatch.setenv("SPEAKER_WAIT_SECONDS", "1")
    try:
        server = Uvicorn(tmp_path / "media")
        yield server
        server.stop()
    finally:
        stripe.stop()


@pytest.mark.slow
def test_no_server_error_and_schema_conformance(server, tenant, api_key, grant, tmp_path):
    grant(tenant, 1_000_000)
    st = Path(sys.executable).with_name("st")
    report = ROOT / "test-output" / "schemathesis"
    report.mkdir(parents=True, exist_ok=True)
    command = [
        str(st), "run", f"{server.url}/api/schema/", "--url", server.url,
        "--header", f"Authorization: Bearer {api_key[1]}",
        "--checks", CHECKS,
        "--phases", "examples,coverage,fuzzing,stateful",
        "--max-examples", str(MAX_EXAMPLES), "--max-time", str(MAX_TIME),
        # One worker: two threads made hypothesis's ast.parse fail on 3.11 ("AST constructor recursion depth mismatch").
        "--workers", "1", "--seed", "14", "--generation-database", "none",
        "--request-timeout", "30", "--suppress-health-check", "too_slow,filter_too_much",
        "--no-color", "--report", "junit", "--report-dir", str(report),
    ]  # fmt: skip
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "", "NO_COLOR": "1"}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=MAX_TIME + 120)
    output = result.stdout + result.stderr
    (report / "output.txt").write_text(output)
    assert result.returncode == 0, output[-20_000:] + "\n--- server log ---\n" + server_log_tail(server)


def server_log_tail(server) -> str:
    try:
        return server.log_path.read_text(errors="replace")[-5_000:]
    except OSError:
        return ""


# --- pagination: the caller's bad page is a 400, a page past the last a 404 (both documented) -----------


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/transcriptions", "/api/v1/ledger"])
@pytest.mark.parametrize("query", [{"page": "0"}, {"page": "abc"}, {"page": "-1"}, {"page_size": "0"},
                                   {"page_size": "x"}, {"page": "１"}])  # fmt: skip
def test_a_malformed_page_or_page_size_is_invalid_request(api_client, path, query):
    response = api_client.get(path, query)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "invalid_request"
    assert response.json()["error"]["param"] == next(iter(query))


@pytest.mark.django_db
def test_a_page_past_the_last_is_not_found_and_page_size_is_capped(api_client, tenant, grant):
    for _ in range(3):
        grant(tenant, 10)
    assert api_client.get("/api/v1/ledger", {"page": "1"}).json()["count"] == 3
    assert len(api_client.get("/api/v1/ledger", {"page_size": "1000"}).json()["results"]) == 3
    assert len(api_client.get("/api/v1/ledger", {"page_size": "2", "page": "2"}).json()["results"]) == 1
    response = api_client.get("/api/v1/ledger", {"page_size": "2", "page": "3"})
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    empty = api_client.get("/api/v1/transcriptions", {"page": "1"})  # an empty list still has its first page
    assert empty.status_code == 200 and empty.json()["results"] == []
