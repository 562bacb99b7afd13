"""Long-polls (`?wait=` and the OpenAI endpoint) wait in the event loop: same answers, no thread held."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from asgiref.sync import async_to_sync
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import AsyncClient
from rest_framework.test import APIClient

from tests.audio_helpers_core import tone_wav
from tests.conftest import ROOT, database_url, wait_for
from transcription.models import Transcription


def submit(client, grant, tenant) -> str:
    grant(tenant, 10_000)
    upload = SimpleUploadedFile("clip.wav", tone_wav(1.0), content_type="audio/wav")
    response = client.post("/api/v1/transcriptions", {"file": upload}, format="multipart")
    assert response.status_code == 202, response.content
    return response.json()["id"]


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


# --- in process (test client: WSGI + async_to_sync; AsyncClient: the ASGI handler) ---------------------


@pytest.mark.django_db
def test_wait_on_a_queued_job_answers_it_as_it_is_after_the_wait(api_client, tenant, grant, media):
    transcription_id = submit(api_client, grant, tenant)
    t0 = time.monotonic()
    response = api_client.get(f"/api/v1/transcriptions/{transcription_id}", {"wait": "0.5"})
    assert response.status_code == 200
    assert 0.45 <= time.monotonic() - t0 < 5
    assert response.json()["id"] == transcription_id and response.json()["status"] == "queued"
    assert response.json() == api_client.get(f"/api/v1/transcriptions/{transcription_id}").json()


@pytest.mark.django_db
def test_a_long_poll_reads_the_job_in_few_queries(api_client, tenant, grant, media, django_assert_max_num_queries):
    """Its first look reads only the status; the answer after the wait reads the row once, whole (not a query
    per deferred field)."""
    transcription_id = submit(api_client, grant, tenant)
    with django_assert_max_num_queries(6):  # key, status, the watcher's looks, the row after the wait
        response = api_client.get(f"/api/v1/transcriptions/{transcription_id}", {"wait": "0.2"})
    assert response.status_code == 200 and response.json()["status"] == "queued"
    Transcription.objects.filter(pk=transcription_id).update(status="canceled")
    with django_assert_max_num_queries(3):  # key, status, the whole row
        response = api_client.get(f"/api/v1/transcriptions/{transcription_id}", {"wait": "5"})
    assert response.json()["status"] == "canceled"


@pytest.mark.django_db
def test_wait_errors_are_unchanged(api_client, other_client, tenant, grant, media):
    transcription_id = submit(api_client, grant, tenant)
    for bad in ("abc", "-1", "61", "nan"):
        response = api_client.get(f"/api/v1/transcriptions/{transcription_id}", {"wait": bad})
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_request"
    t0 = time.monotonic()
    for client, path in (
        (other_client, f"/api/v1/transcriptions/{transcription_id}"),  # another tenant's job
        (api_client, "/api/v1/transcriptions/not-a-uuid"),
        (api_client, "/api/v1/transcriptions/00000000-0000-0000-0000-000000000000"),
    ):
        response = client.get(path, {"wait": "30"})
        assert response.status_code == 404
        assert response.json() == {"error": {"code": "not_found", "message": "No such transcription."}}
    assert time.monotonic() - t0 < 5, "a 404 does not wait"
    anonymous = APIClient().get(f"/api/v1/transcriptions/{transcription_id}", {"wait": "5"})
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "invalid_api_key"


@pytest.mark.django_db
def test_wait_on_a_final_job_answers_at_once(api_client, tenant, grant, media):
    transcription_id = submit(api_client, grant, tenant)
    assert api_client.post(f"/api/v1/transcriptions/{transcription_id}/cancel").status_code == 200
    t0 = time.monotonic()
    response = api_client.get(f"/api/v1/transcriptions/{transcription_id}", {"wait": "30"})
    assert time.monotonic() - t0 < 2
    assert response.status_code == 200 and response.json()["status"] == "canceled"


@pytest.mark.django_db
def test_openai_endpoint_times_out_with_504_and_the_job_id(api_client, tenant, grant, settings, media):
    settings.OPENAI_WAIT_SECONDS = 1
    grant(tenant, 10_000)
    upload = SimpleUploadedFile("clip.wav", tone_wav(1.0), content_type="audio/wav")
    response = api_client.post("/v1/audio/transcriptions", {"file": upload, "model": "whisper-1"}, format="multipart")
    assert response.status_code == 504 and response["x-should-retry"] == "false"
    job = Transcription.objects.get(tenant=tenant)
    assert response.json()["error"]["code"] == "timeout"
    assert response.json()["error"]["transcription_id"] == str(job.pk)
    assert f"poll GET /api/v1/transcriptions/{job.pk}" in response.json()["error"]["message"]


@pytest.mark.django_db
def test_wait_through_the_asgi_handler(api_client, api_key, tenant, grant, media):
    transcription_id = submit(api_client, grant, tenant)
    get = async_to_sync(AsyncClient().get)
    path = f"/api/v1/transcriptions/{transcription_id}"
    response = get(path, {"wait": "0.2"}, headers={"Authorization": f"Bearer {api_key[1]}"})
    assert response.status_code == 200 and response.json()["status"] == "queued"
    other = get(path, {"wait": "5"}, headers={"Authorization": "Bearer nope"})
    assert other.status_code == 401 and other.json()["error"]["code"] == "invalid_api_key"


def test_every_middleware_can_run_async(settings):
    """One sync-only middleware would make every ASGI request block a thread for its whole wait."""
    from django.utils.module_loading import import_string

    sync_only = [path for path in settings.MIDDLEWARE if not getattr(import_string(path), "async_capable", False)]
    assert sync_only == []


def test_async_timezone_middleware_activates_the_session_zone():
    """portal.middleware runs the dashboard's own middleware code; the zone reaches the async view."""
    from django.http import HttpResponse
    from django.test import RequestFactory
    from django.utils import timezone

    from portal.middleware import UserTimezoneMiddleware

    seen = []

    async def view(request):
        seen.append(timezone.get_current_timezone_name())
        return HttpResponse("ok")

    middleware = UserTimezoneMiddleware(view)
    request = RequestFactory().get("/app/")
    request.session = {"tz": "Asia/Shanghai"}
    assert async_to_sync(middleware)(request).status_code == 200
    request.session = {}
    async_to_sync(middleware)(request)
    assert seen == ["Asia/Shanghai", "UTC"]


def test_async_whitenoise_serves_static_files(settings):
    settings.WHITENOISE_USE_FINDERS = True
    settings.WHITENOISE_AUTOREFRESH = True
    response = async_to_sync(AsyncClient().get)("/static/dashboard/app.css")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == (ROOT / "static" / "dashboard" / "app.css").read_bytes()
    response.close()


# --- against a real uvicorn server -----------------------------------------------------------------------


class Uvicorn:
    """`uvicorn portal.asgi:application` in a subprocess, on the test database."""

    def __init__(self, media_root, extra_env: dict | None = None):
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "portal.settings.test",
            "DATABASE_URL": database_url(),
            "MEDIA_ROOT": str(media_root),
            "PYTHONUNBUFFERED": "1",
            **(extra_env or {}),
        }
        self.log_path = ROOT / "test-output" / f"uvicorn-{os.getpid()}-{time.time_ns()}.log"
        self.log_path.parent.mkdir(exist_ok=True)
        self._log = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "portal.asgi:application", "--host", "127.0.0.1",
             "--port", str(self.port), "--lifespan", "off", "--timeout-graceful-shutdown", "1"],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            wait_for(self._healthy, timeout=60, interval=0.2, message="uvicorn to answer /healthz")
        except BaseException:
            self.stop()  # never leave a server behind
            raise

    def _healthy(self) -> bool:
        assert self.proc.poll() is None, self.log_path.read_text(errors="replace")
        try:
            return requests.get(f"{self.url}/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self._log.close()


@pytest.fixture
def uvicorn_server(transactional_db, tmp_path):
    server = Uvicorn(tmp_path / "media")
    yield server
    server.stop()


WAITERS = 40


def test_many_waits_leave_the_server_responsive_and_end_when_the_job_does(uvicorn_server, tenant, api_key, grant):
    grant(tenant, 1_000_000)
    headers = {"Authorization": f"Bearer {api_key[1]}"}
    session = requests.Session()
    ids = []
    for i in range(WAITERS):
        r = session.post(f"{uvicorn_server.url}/api/v1/transcriptions", headers=headers,
                         files={"file": (f"c{i}.wav", tone_wav(1.0 + i / 100), "audio/wav")}, timeout=30)  # fmt: skip
        assert r.status_code == 202, r.text
        ids.append(r.json()["id"])

    def long_poll(transcription_id: str) -> tuple[float, dict]:
        r = requests.get(f"{uvicorn_server.url}/api/v1/transcriptions/{transcription_id}", params={"wait": 30},
                         headers=headers, timeout=60)  # fmt: skip
        return time.monotonic(), r.json()

    with ThreadPoolExecutor(WAITERS) as pool:
        futures = {transcription_id: pool.submit(long_poll, transcription_id) for transcription_id in ids}
        time.sleep(1.0)  # every wait has reached the server
        assert not any(f.done() for f in futures.values()), "queued jobs are waited for"

        t0 = time.monotonic()
        health = requests.get(f"{uvicorn_server.url}/healthz", timeout=10)
        assert health.status_code == 200 and time.monotonic() - t0 < 2.0

        canceled = ids[0]
        r = session.post(f"{uvicorn_server.url}/api/v1/transcriptions/{canceled}/cancel", headers=headers, timeout=10)
        assert r.status_code == 200
        ended_at, body = futures[canceled].result(timeout=10)
        assert body["id"] == canceled and body["status"] == "canceled"
        assert ended_at - time.monotonic() < 1.5  # it answered as the job ended, not after its 30 s
        assert time.monotonic() - t0 < 5
        assert sum(f.done() for f in futures.values()) == 1, "only the ended job's wait answered"

        for transcription_id in ids[1:]:  # end the rest the same way
            session.post(
                f"{uvicorn_server.url}/api/v1/transcriptions/{transcription_id}/cancel", headers=headers, timeout=10
            )
        for transcription_id in ids[1:]:
            assert futures[transcription_id].result(timeout=10)[1]["status"] == "canceled"
