"""Database round trips per transcription (issue 13.2): a submit and the worker's share of a batch stay few."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.audio_helpers_core import tone_wav
from transcription import services
from transcription.engines import get_engine
from transcription.models import Transcription

# Submit: the API key (1), the row and its hold in one statement of its own that also checks there is no cached
# result (PostgreSQL: billing.hold_place_with_row; no BEGIN/COMMIT, no lookup of its own), and the queue hop: 3
# (4 with the cache lookup apart; 7 when the row, the hold, BEGIN and COMMIT were four; 9 before the hold was one
# statement). SQLite keeps the lookup, the transaction and the ORM money write.
SUBMIT_MAX_QUERIES = 3
SUBMIT_SQLITE_EXTRA = 6
# Worker, per transcription when 4 are batched: the finalize, one statement on PostgreSQL (the row's guarded write
# and the settle, transcription.services.finalize), plus a quarter of the shared claims and polls (14 for the 4):
# 18 for 4, 4.5 each (8.5 when the finalize was a transaction of 5, 10.5 before the money write was one statement).
WORKER_MAX_QUERIES_PER_JOB = 5
# SQLite keeps the finalize's transaction (BEGIN, the row's lock, its write, the settle, COMMIT).
WORKER_SQLITE_EXTRA = 4
# SQLite keeps the ORM money write (SELECT the balance, INSERT the entry, UPDATE the balance): 2 more per write.
ORM_MONEY_WRITE_EXTRA = 2


def _limit(postgres: float) -> float:
    return postgres if connection.vendor == "postgresql" else postgres + ORM_MONEY_WRITE_EXTRA


@pytest.mark.django_db(transaction=True)
def test_a_submit_costs_a_few_round_trips(api_client, tenant, grant, django_assert_max_num_queries):
    grant(tenant, 10_000)
    api_client.post("/api/v1/transcriptions", {"file": SimpleUploadedFile("w.wav", tone_wav(1.0))}, format="multipart")
    extra = 0 if connection.vendor == "postgresql" else SUBMIT_SQLITE_EXTRA
    with django_assert_max_num_queries(SUBMIT_MAX_QUERIES + extra):
        response = api_client.post(
            "/api/v1/transcriptions",
            {"file": SimpleUploadedFile("a.wav", tone_wav(1.0, freq=330.0))},
            format="multipart",
        )
    assert response.status_code == 202, response.content


@pytest.mark.django_db(transaction=True)  # as the worker runs: no test transaction around it (no savepoints)
def test_a_batched_transcription_costs_the_worker_a_few_round_trips(api_client, tenant, grant, monkeypatch):
    engine = get_engine()
    engine.load()
    kind = engine.device.split(":")[0]
    monkeypatch.setattr(engine, "batching", {kind: {"budget_s": 60.0, "max_items": 32, "max_jobs": 8}})
    grant(tenant, 10_000)
    ids = [
        api_client.post(
            "/api/v1/transcriptions",
            {"file": SimpleUploadedFile(f"{i}.wav", tone_wav(1.0, freq=200.0 + 50 * i))},
            format="multipart",
        ).json()["id"]
        for i in range(4)
    ]
    with CaptureQueriesContext(connection) as worker:
        assert services.transcription_run(transcription_id=ids[0]) == "succeeded"
        for tid in ids[1:]:
            assert services.transcription_run(transcription_id=tid) == "skipped"  # the queued tasks of the batch
    assert Transcription.objects.filter(pk__in=ids, status="succeeded").count() == 4
    per_job = len(worker.captured_queries) / len(ids)
    extra = 0 if connection.vendor == "postgresql" else WORKER_SQLITE_EXTRA
    assert per_job <= _limit(WORKER_MAX_QUERIES_PER_JOB + extra), [q["sql"][:120] for q in worker.captured_queries]


def _after_balance_lock(queries: list[dict]) -> list[list[str]]:
    """Per transaction that writes the balance: the statements from its first balance-row statement on."""
    tails, current = [], None
    for query in queries:
        sql = query["sql"]
        if sql.startswith(("COMMIT", "ROLLBACK")):
            if current is not None:
                tails.append(current)
            current = None
        elif current is not None:
            current.append(sql)
        elif "billing_balanceaccount" in sql:
            current = [sql]
    return tails


@pytest.mark.django_db(transaction=True)
def test_the_tenants_balance_row_is_locked_only_at_the_end_of_a_submit_and_a_finalize(api_client, tenant, grant):
    """Every job of a tenant writes its one balance row (hold, settle). On PostgreSQL a submit's row and hold, and
    a finalize's row write and settle, are each one statement of their own: the balance row's lock lasts that
    statement. Elsewhere each transaction takes that lock with its last statements, so it is held only until the
    commit, not across the job row's writes (issue 13: 20 clients of one tenant queued on it)."""
    grant(tenant, 10_000)
    with CaptureQueriesContext(connection) as submitted:
        job_id = api_client.post(
            "/api/v1/transcriptions", {"file": SimpleUploadedFile("a.wav", tone_wav(1.0))}, format="multipart"
        ).json()["id"]
    with CaptureQueriesContext(connection) as finished:
        assert services.transcription_run(transcription_id=job_id) == "succeeded"
    if connection.vendor == "postgresql":
        for captured, row_write in ((submitted, 'INSERT INTO "transcription_transcription"'),
                                    (finished, 'UPDATE "transcription_transcription"')):  # fmt: skip
            money = [q["sql"] for q in captured.captured_queries if "billing_balanceaccount" in q["sql"]]
            assert len(money) == 1 and row_write in money[0], money
            assert not _after_balance_lock(captured.captured_queries)  # no transaction around it
        return
    else:
        tails = _after_balance_lock(submitted.captured_queries + finished.captured_queries)
        assert len(tails) == 2, [q["sql"][:100] for q in finished.captured_queries]  # the hold, the settle
    for tail in tails:
        assert all("billing_balanceaccount" in sql or "billing_ledgerentry" in sql for sql in tail), tail


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_submits_statements_are_parsed_once_per_text(api_client, tenant, grant, require_postgres, monkeypatch):
    """psycopg parses a statement's placeholders once per text only up to MAX_CACHED_STATEMENT_PARAMS parameters,
    and anew on every execution above; portal.apps raises that limit above the submit's one statement (~70
    parameters), whose parsing was ~4% of the web's CPU. Either binding: on the server (portal.env's default) or
    on the client (DB_PREPARED_STATEMENTS=false)."""
    from psycopg import _queries

    uncached = []
    for name in ("_query2pg_nocache", "_query2pg_client_nocache"):
        parse = getattr(_queries, name)
        monkeypatch.setattr(_queries, name, lambda *a, parse=parse: uncached.append(a) or parse(*a))
    grant(tenant, 10_000)
    api_client.post("/api/v1/transcriptions", {"file": SimpleUploadedFile("w.wav", tone_wav(1.0))}, format="multipart")
    caches = (_queries._query2pg, _queries._query2pg_client)
    misses = [cache.cache_info().misses for cache in caches]
    hits = sum(cache.cache_info().hits for cache in caches)
    response = api_client.post(
        "/api/v1/transcriptions", {"file": SimpleUploadedFile("a.wav", tone_wav(1.0, freq=330.0))}, format="multipart"
    )
    assert response.status_code == 202, response.content
    assert not uncached, "a statement with too many parameters for psycopg's cache was parsed on every execution"
    assert [cache.cache_info().misses for cache in caches] == misses, "a statement was parsed again"
    assert sum(cache.cache_info().hits for cache in caches) > hits  # the submit's statements came from the cache
