"""Hostile input and failures never answer Django's HTML 500 page on API paths (issue 14).

Each 500 a tester found has a test at its cause; unhandled exceptions and database outages answer the
documented JSON shape with a request id, through DRF views, non-DRF views, async views and middlewares.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from asgiref.sync import async_to_sync, iscoroutinefunction, markcoroutinefunction
from django.db import OperationalError, connection
from django.http import JsonResponse
from django.test import AsyncClient, Client
from django.urls import include, path
from django.utils import timezone
from django.utils.crypto import get_random_string

from billing.models import BalanceAccount
from portal.request_id import RequestIdFilter, request_id_get, request_id_var
from tests.audio_helpers_core import tone_wav
from tests.conftest import require_postgresql
from tests.dashboard.conftest import login, make_member, owner, owner_client  # noqa: F401  (fixtures)
from transcription.models import Transcription

pytestmark = pytest.mark.django_db


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    return error


# --- 1, 2: GET /usage with empty, invalid and out-of-range dates ------------------------------------------


@pytest.mark.parametrize("query", ["to=", "from=", "from=&to="])
def test_usage_empty_parameter_counts_as_absent(api_client, query):
    body = api_client.get(f"/api/v1/usage?{query}").json()

    assert body["to"] == timezone.localdate().isoformat()
    assert len(body["days"]) == 30


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("to=abc", "to"),
        ("from=2026-13-45", "from"),
        ("from=9999-12-01&to=9999-12-31", "from"),  # was an OverflowError
        ("to=9999-12-31", "to"),
        ("from=0001-01-01&to=0001-01-02", "from"),
        ("from=2026-02-01&to=2026-01-31", "from"),  # from after to
        ("from=2024-01-01&to=2025-01-01", "from"),  # 366 days + 1
    ],
)
def test_usage_invalid_or_out_of_range_dates_are_400_naming_the_parameter(api_client, query, param):
    error = assert_error(api_client.get(f"/api/v1/usage?{query}"), 400, "invalid_request")

    assert param in error["fields"], error
    assert error["message"].startswith(f"{param}: ")


def test_usage_accepts_exactly_366_days(api_client):
    body = api_client.get("/api/v1/usage?from=2024-01-01&to=2024-12-31").json()

    assert len(body["days"]) == 366


# --- 3: monthly statements for months that are not datetimes ----------------------------------------------


@pytest.mark.parametrize("period", ["0000-01", "9999-12", "1999-12", "3000-01"])
def test_statement_of_an_impossible_month_is_400(api_client, period):
    error = assert_error(api_client.get(f"/api/v1/billing/statements/{period}"), 400, "invalid_request")

    assert period in error["message"]


@pytest.mark.parametrize("period", ["0000-01", "9999-12", "2026-01%0A"])
def test_dashboard_statement_of_an_impossible_month_is_the_404_page(owner_client, period):  # noqa: F811
    response = owner_client.get(f"/app/billing/statements/{period}/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


# --- 4: webhook_url longer than its column -----------------------------------------------------------------


def test_webhook_url_longer_than_the_column_is_400_and_stores_nothing(api_client, tenant, grant):
    from django.core.files.uploadedfile import SimpleUploadedFile

    grant(tenant, 1000)
    url = "https://example.com/" + "a" * 1000
    upload = SimpleUploadedFile("clip.wav", tone_wav(1.0), content_type="audio/wav")

    response = api_client.post("/api/v1/transcriptions", {"file": upload, "webhook_url": url}, format="multipart")

    error = assert_error(response, 400, "invalid_request")
    assert "webhook_url" in error["fields"]
    assert Transcription.objects.count() == 0
    assert BalanceAccount.objects.get(tenant=tenant).held == 0


# --- list endpoints with hostile query parameters -----------------------------------------------------------


@pytest.mark.parametrize("url", ["/api/v1/transcriptions", "/api/v1/ledger"])
@pytest.mark.parametrize(
    "query",
    ["created_after=garbage", "created_before=9999-12-31T23:59:59-05:00", "page=0", "page=-1", "page=abc",
     "page=99999999999999999999", "page_size=100000", "page_size=abc", "page_size=0", "status=", "kind="],
)  # fmt: skip
def test_list_endpoints_answer_hostile_parameters_without_a_500(api_client, url, query):
    response = api_client.get(f"{url}?{query}")

    assert response.status_code < 500, response.content
    if response.status_code >= 400:
        assert_error(response, response.status_code, response.json()["error"]["code"])
    else:
        assert len(response.json()["results"]) <= 100


# --- 5: unhandled exceptions and database outages ----------------------------------------------------------


def _boom(**kwargs):
    raise RuntimeError("secret detail that must not leak")


def _db_down(**kwargs):
    raise OperationalError("server closed the connection unexpectedly")


def test_unhandled_exception_in_a_drf_view_is_json_500_with_the_request_id(api_client, monkeypatch, caplog):
    monkeypatch.setattr("transcription.selectors.usage_by_day", _boom)

    with caplog.at_level(logging.ERROR, logger="django.request"):
        response = api_client.get("/api/v1/usage", HTTP_X_REQUEST_ID="client-id-42")

    error = assert_error(response, 500, "internal_error")
    assert error["request_id"] == response["X-Request-ID"] == "client-id-42"
    assert "secret" not in response.content.decode()
    logged = [r for r in caplog.records if r.exc_info and r.exc_info[0] is RuntimeError]
    assert len(logged) == 1  # once, with the traceback


def test_database_outage_in_a_drf_view_is_503_with_retry_after(api_client, monkeypatch):
    monkeypatch.setattr("transcription.selectors.usage_by_day", _db_down)

    response = api_client.get("/api/v1/usage")

    error = assert_error(response, 503, "service_unavailable")
    assert "retry" in error["message"]
    assert int(response["Retry-After"]) > 0
    assert error["request_id"] == response["X-Request-ID"]


def test_database_outage_in_a_long_poll_is_503(api_client, monkeypatch):
    async def await_final(**kwargs):
        raise OperationalError("terminating connection due to administrator command")

    # The handler reads the job's status first (a queued one: it waits), then the wait fails.
    monkeypatch.setattr(
        "transcription.selectors.transcription_status_of", lambda **kwargs: SimpleNamespace(is_final=False)
    )
    monkeypatch.setattr("transcription.selectors.transcription_await_final", await_final)

    response = api_client.get("/api/v1/transcriptions/anything?wait=1")

    assert_error(response, 503, "service_unavailable")
    assert response["Retry-After"]


def test_unhandled_exception_in_a_long_poll_is_json_500(api_client, monkeypatch):
    async def await_final(**kwargs):
        raise RuntimeError("bug")

    # The handler reads the job's status first (a queued one: it waits), then the wait fails.
    monkeypatch.setattr(
        "transcription.selectors.transcription_status_of", lambda **kwargs: SimpleNamespace(is_final=False)
    )
    monkeypatch.setattr("transcription.selectors.transcription_await_final", await_final)

    response = api_client.get("/api/v1/transcriptions/anything?wait=1")

    assert assert_error(response, 500, "internal_error")["request_id"] == response["X-Request-ID"]


def test_database_outage_in_the_openai_compatible_api_is_503(api_client, monkeypatch):
    monkeypatch.setattr("transcription.selectors.transcription_get", _db_down)

    response = api_client.get("/api/v1/transcriptions/anything")

    assert_error(response, 503, "service_unavailable")


# Views outside DRF, served by a URLconf of this module (tests mark it with pytest.mark.urls).


def _sync_boom(request):
    raise RuntimeError("bug in a plain view")


def _sync_db_down(request):
    raise OperationalError("could not connect to server")


async def _async_boom(request):
    raise RuntimeError("bug in an async view")


async def _async_db_down(request):
    raise OperationalError("connection refused")


def _whoami(request):
    logging.getLogger("tests.server_errors").warning("serving")
    return JsonResponse({"request_id": request_id_get()})


async def _async_whoami(request):
    return JsonResponse({"request_id": request_id_get()})


urlpatterns = [
    path("api/test/boom", _sync_boom),
    path("api/test/db-down", _sync_db_down),
    path("api/test/async-boom", _async_boom),
    path("api/test/async-db-down", _async_db_down),
    path("v1/test/boom", _sync_boom),
    path("api/test/whoami", _whoami),
    path("api/test/async-whoami", _async_whoami),
    path("app/boom", _sync_boom),
    path("", include("portal.urls")),
]
handler404 = "portal.views.not_found"
handler500 = "portal.views.server_error"
URLS = "tests.test_server_errors"


@pytest.mark.urls(URLS)
@pytest.mark.parametrize(
    ("url", "status", "code"),
    [
        ("/api/test/boom", 500, "internal_error"),
        ("/v1/test/boom", 500, "internal_error"),
        ("/api/test/db-down", 503, "service_unavailable"),
        ("/api/test/async-boom", 500, "internal_error"),
        ("/api/test/async-db-down", 503, "service_unavailable"),
    ],
)
def test_non_drf_views_on_api_paths_answer_json(url, status, code):
    response = Client().get(url)

    assert assert_error(response, status, code)["request_id"] == response["X-Request-ID"]
    assert ("Retry-After" in response) == (status == 503)


@pytest.mark.urls(URLS)
@pytest.mark.parametrize(
    ("url", "status", "code"),
    [("/api/test/async-boom", 500, "internal_error"), ("/api/test/async-db-down", 503, "service_unavailable")],
)
def test_non_drf_views_answer_json_through_the_async_middleware_chain(url, status, code):
    response = async_to_sync(AsyncClient().get)(url, headers={"X-Request-ID": "async-7"})

    assert assert_error(response, status, code)["request_id"] == response["X-Request-ID"] == "async-7"


@pytest.mark.urls(URLS)
def test_dashboard_paths_keep_the_html_500_page():
    response = Client(raise_request_exception=False).get("/app/boom")

    assert response.status_code == 500
    assert response["Content-Type"].startswith("text/html")
    assert response["X-Request-ID"]


class RaisingMiddleware:
    """Raises what the test puts in `exc` (an exception outside any view: handler500 answers it)."""

    sync_capable = True
    async_capable = True
    exc: Exception = RuntimeError("bug in a middleware")

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)
            self.__call__ = self._acall  # type: ignore[method-assign]

    def __call__(self, request):
        raise self.exc

    async def _acall(self, request):
        raise self.exc


@pytest.fixture
def raising_middleware(settings, monkeypatch):
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "tests.test_server_errors.RaisingMiddleware"]
    return lambda exc: monkeypatch.setattr(RaisingMiddleware, "exc", exc)


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [(RuntimeError("bug"), 500, "internal_error"), (OperationalError("db down"), 503, "service_unavailable")],
)
def test_exception_in_a_middleware_on_an_api_path_is_json(raising_middleware, exc, status, code):
    raising_middleware(exc)

    response = Client(raise_request_exception=False).get("/api/v1/usage")

    assert assert_error(response, status, code)["request_id"] == response["X-Request-ID"]


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [(RuntimeError("bug"), 500, "internal_error"), (OperationalError("db down"), 503, "service_unavailable")],
)
def test_exception_in_a_middleware_in_async_mode_is_json(raising_middleware, exc, status, code):
    # Django calls handler500 through sync_to_async, which re-raises the exception in its thread.
    raising_middleware(exc)

    response = async_to_sync(AsyncClient(raise_request_exception=False).get)("/api/v1/usage")

    assert assert_error(response, status, code)["request_id"] == response["X-Request-ID"]


# --- request ids -------------------------------------------------------------------------------------------


@pytest.mark.urls(URLS)
@pytest.mark.parametrize(
    ("incoming", "kept"),
    [("abc-123", True), ("Root=1-67891233-abcdef012345678912345678", True), ("", False),
     ("x" * 129, False), ("bad id", False), ("evil\r\nSet-Cookie: a=b", False), ("id\n", False)],
)  # fmt: skip
def test_safe_incoming_request_ids_are_kept_others_replaced(incoming, kept):
    response = Client().get("/api/test/whoami", HTTP_X_REQUEST_ID=incoming)

    assert response.json()["request_id"] == response["X-Request-ID"]
    assert (response["X-Request-ID"] == incoming) == kept
    assert 1 <= len(response["X-Request-ID"]) <= 128


@pytest.mark.urls(URLS)
def test_request_id_is_set_in_async_mode_and_reset_after():
    first = async_to_sync(AsyncClient().get)("/api/test/async-whoami")
    second = async_to_sync(AsyncClient().get)("/api/test/async-whoami")

    assert first.json()["request_id"] == first["X-Request-ID"]
    assert second["X-Request-ID"] != first["X-Request-ID"]
    assert request_id_get() == "-"


@pytest.mark.urls(URLS)
def test_log_records_carry_the_request_id(caplog):
    caplog.handler.addFilter(RequestIdFilter())

    with caplog.at_level(logging.WARNING, logger="tests.server_errors"):
        response = Client().get("/api/test/whoami")

    (record,) = [r for r in caplog.records if r.name == "tests.server_errors"]
    assert record.request_id == response["X-Request-ID"]
    assert request_id_get() == "-"


def test_logging_configuration_prints_the_request_id():
    from django.conf import settings

    token = request_id_var.set("rid-1")
    try:
        handler = logging.getLogger().handlers[0]
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
        assert handler.filter(record)
        assert "[rid-1]" in handler.format(record)
    finally:
        request_id_var.reset(token)
    assert "%(request_id)s" in settings.LOGGING["formatters"]["plain"]["format"]


def test_every_middleware_can_run_in_async_mode():
    from django.conf import settings
    from django.utils.module_loading import import_string

    for dotted in settings.MIDDLEWARE:
        middleware = import_string(dotted)
        assert getattr(middleware, "async_capable", False), dotted


# --- a real outage on PostgreSQL: the view's connection is terminated by the server --------------------------


@pytest.mark.django_db(transaction=True)
def test_postgres_connection_terminated_is_503(api_client):
    require_postgresql()
    import psycopg

    settings_dict = connection.settings_dict
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    admin = psycopg.connect(
        dbname=settings_dict["NAME"],
        user=settings_dict.get("USER") or "postgres",
        password=settings_dict.get("PASSWORD") or None,
        host=settings_dict.get("HOST") or "127.0.0.1",
        port=settings_dict.get("PORT") or 5432,
        autocommit=True,
    )
    try:
        # Only our own test connection (its pid, in our own test database) is terminated.
        with admin.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = %s AND datname = %s",
                [pid, settings_dict["NAME"]],
            )
            assert cursor.fetchone() == (True,)

        response = api_client.get("/api/v1/usage", HTTP_X_REQUEST_ID=f"pg-{get_random_string(6)}")
    finally:
        admin.close()
        connection.close()  # the broken connection; the next query opens a fresh one

    error = assert_error(response, 503, "service_unavailable")
    assert error["request_id"] == response["X-Request-ID"]
    assert response["Retry-After"]
