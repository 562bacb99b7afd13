"""DB_PREPARED_STATEMENTS=true: PostgreSQL binds parameters on the server and runs repeated statements prepared
(portal.env.prepared_statements); off by default, when Django binds them on the client (issue 13)."""

from __future__ import annotations

import environ
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from billing.models import BalanceAccount
from portal.env import database_from_env, prepared_statements
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


def test_postgres_connections_bind_on_the_server_and_prepare_only_when_asked(monkeypatch):
    for process in ("web", "worker"):  # pooled (web) and kept (workers) connections alike
        default = _database(monkeypatch, DATABASE_URL=POSTGRES_URL, TINGXIE_PROCESS=process).get("OPTIONS", {})
        assert "server_side_binding" not in default and "prepare_threshold" not in default  # Django's: client binding
        options = _database(
            monkeypatch, DATABASE_URL=POSTGRES_URL, TINGXIE_PROCESS=process, DB_PREPARED_STATEMENTS="true"
        )["OPTIONS"]
        assert options["server_side_binding"] is True and options["prepare_threshold"] == 5
    options = _database(
        monkeypatch, DATABASE_URL=POSTGRES_URL, DB_PREPARED_STATEMENTS="true", DB_PREPARE_THRESHOLD="2"
    )["OPTIONS"]
    assert options["prepare_threshold"] == 2
    sqlite = _database(monkeypatch, DATABASE_URL="sqlite:////tmp/x.sqlite3", DB_PREPARED_STATEMENTS="true")["OPTIONS"]
    assert "server_side_binding" not in sqlite and "prepare_threshold" not in sqlite


@pytest.fixture
def prepared_connection(monkeypatch):
    """The test's connection as DB_PREPARED_STATEMENTS=true makes it, kept between requests as the web tier's
    pooled ones are (the test settings' ORM broker closes a connection of CONN_MAX_AGE 0 on every enqueue)."""
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", None)
    options = dict(connection.settings_dict.get("OPTIONS", {}))
    prepared_statements(options, threshold=2)
    monkeypatch.setitem(connection.settings_dict, "OPTIONS", options)
    connection.close()
    yield 2
    connection.close()  # the next test connects as the settings say


def _prepared(fragment: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements WHERE statement LIKE %s", [f"%{fragment}%"])
        return [row[0] for row in cursor.fetchall()]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)  # the fixture reconnects: no test transaction to lose
def test_a_repeated_statement_is_prepared_on_its_connection(api_key, require_postgres, prepared_connection):
    prefix = api_key[0].prefix
    for _ in range(prepared_connection + 1):
        assert usable_key_with_tenant(prefix).pk == api_key[0].pk
    statements = _prepared('"tenants_apikey" k')
    assert len(statements) == 1 and "$1" in statements[0], statements  # server placeholders: bound by the server


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)  # as the web tier runs them: no test transaction around the statements
def test_submits_run_their_money_statement_prepared_and_the_books_balance(
    api_client, tenant, grant, require_postgres, prepared_connection
):
    grant(tenant, 100_000)
    for i in range(prepared_connection + 2):
        response = api_client.post(
            "/api/v1/transcriptions",
            {"file": SimpleUploadedFile(f"{i}.wav", tone_wav(0.5, freq=200.0 + 20 * i))},
            format="multipart",
        )
        assert response.status_code == 202, response.content
    assert _prepared('INSERT INTO "transcription_transcription"'), "the submit's row-and-hold statement ran unprepared"
    assert BalanceAccount.objects.get(tenant=tenant).held > 0  # the holds were written
    assert_books_balance()
