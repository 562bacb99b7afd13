"""PostgreSQL binds parameters on the server and runs repeated statements prepared (portal.env.prepared_statements):
a statement a connection has run a few times is parsed and planned once, not on every execution (issue 13)."""

from __future__ import annotations

import environ
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from billing.models import BalanceAccount
from portal.env import database_from_env
from tenants.key_lookup import usable_key_with_tenant
from tests.audio_helpers_core import tone_wav
from tests.conftest import assert_books_balance

POSTGRES_URL = "postgres://u@127.0.0.1:5432/x"


def _database(monkeypatch, **values) -> dict:
    for name in ("DB_POOL", "TINGXIE_PROCESS", "DB_PREPARED_STATEMENTS", "DB_PREPARE_THRESHOLD"):
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return database_from_env(environ.Env(), default="sqlite:///unused.sqlite3")


def test_postgres_connections_bind_on_the_server_and_prepare_unless_told_not_to(monkeypatch):
    for process in ("web", "worker"):  # pooled (web) and kept (workers) connections alike
        options = _database(monkeypatch, DATABASE_URL=POSTGRES_URL, TINGXIE_PROCESS=process)["OPTIONS"]
        assert options["server_side_binding"] is True and options["prepare_threshold"] == 5
    options = _database(monkeypatch, DATABASE_URL=POSTGRES_URL, DB_PREPARE_THRESHOLD="7")["OPTIONS"]
    assert options["prepare_threshold"] == 7
    off = _database(monkeypatch, DATABASE_URL=POSTGRES_URL, DB_PREPARED_STATEMENTS="false").get("OPTIONS", {})
    assert "server_side_binding" not in off and "prepare_threshold" not in off  # Django's defaults: client binding
    sqlite = _database(monkeypatch, DATABASE_URL="sqlite:////tmp/x.sqlite3")["OPTIONS"]
    assert "server_side_binding" not in sqlite and "prepare_threshold" not in sqlite


def _prepared(fragment: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements WHERE statement LIKE %s", [f"%{fragment}%"])
        return [row[0] for row in cursor.fetchall()]


@pytest.mark.postgres
def test_a_repeated_statement_is_prepared_on_its_connection(api_key, require_postgres):
    prefix = api_key[0].prefix
    threshold = connection.settings_dict["OPTIONS"]["prepare_threshold"]
    for _ in range(threshold + 1):
        assert usable_key_with_tenant(prefix).pk == api_key[0].pk
    statements = _prepared('"tenants_apikey" k')
    assert len(statements) == 1 and "$1" in statements[0], statements  # server placeholders: bound by the server


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)  # as the web tier runs them: no test transaction around the statements
def test_submits_run_their_money_statement_prepared_and_the_books_balance(
    api_client, tenant, grant, require_postgres, monkeypatch
):
    # A kept connection, as the web tier's pooled ones are (the test settings' ORM broker closes a connection of
    # CONN_MAX_AGE 0 on every enqueue, and its prepared statements with it).
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", None)
    connection.close()
    grant(tenant, 100_000)
    threshold = connection.settings_dict["OPTIONS"]["prepare_threshold"]
    for i in range(threshold + 2):
        response = api_client.post(
            "/api/v1/transcriptions",
            {"file": SimpleUploadedFile(f"{i}.wav", tone_wav(0.5, freq=200.0 + 20 * i))},
            format="multipart",
        )
        assert response.status_code == 202, response.content
    assert _prepared('INSERT INTO "transcription_transcription"'), "the submit's row-and-hold statement ran unprepared"
    assert BalanceAccount.objects.get(tenant=tenant).held > 0  # the holds were written
    assert_books_balance()
