"""Served files are data, never pages of our origin: server-decided types, nosniff, sandboxing CSP, safe filenames.

The reproduced attack: a member (or any API key) uploads a real WAV with an HTML document appended, named
`notes.html`; FFmpeg still reads it as audio. The owner opens its audio link; before the fix it was served as
text/html inline and the script created an API key in the owner's session.
"""

from __future__ import annotations

import re
import time

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse
from django.utils import timezone

from portal.downloads import content_disposition, safe_filename
from transcription.audio import served_type as audio_type_for_file
from transcription.audio import served_type_for_container as audio_type_for_container

# What the hostile tester appended: it marks the page, then creates an API key with the owner's session.
PAYLOAD_JS = (
    "document.title='PWNED';window.name='pwned';"
    "var d=document.createElement('div');d.id='pwned-marker';document.documentElement.appendChild(d);"
    "fetch('/app/keys/',{credentials:'include'}).then(function(r){return r.text()}).then(function(t){"
    'var m=t.match(/name="csrfmiddlewaretoken" value="([^"]+)"/);var f=new FormData();'
    "f.append('csrfmiddlewaretoken',m[1]);f.append('name','pwned');"
    "return fetch('/app/keys/',{method:'POST',body:f,credentials:'include'})});"
)
PAYLOAD = f"<html><script>{PAYLOAD_JS}</script></html>".encode()
HOSTILE_NAME = '../../evil"\r\n.html'


def polyglot_bytes(tmp_path) -> bytes:
    from tests.audio_samples import tone, write_wav

    return write_wav(tmp_path / "real.wav", tone(1.5)).read_bytes() + PAYLOAD


def upload_as_member(tenant, make_member, login, tmp_path, name: str = "notes.html"):
    """A plain member uploads the polyglot through the dashboard; returns the stored job."""
    path = tmp_path / name
    path.write_bytes(polyglot_bytes(tmp_path))
    member = login(make_member(tenant, "member"))
    with open(path, "rb") as fh:
        response = member.post(reverse("dashboard:transcription_new"), {"files": fh, "language": "auto"})
    assert response.status_code == 302, response.content.decode()[:2000]
    job = tenant.transcriptions.get()
    assert job.filename == name and job.audio
    return job


def assert_file_headers(response, *, csp_has: tuple[str, ...] = ("sandbox", "default-src 'none'")) -> str:
    """nosniff, a sandboxing CSP and a well-formed Content-Disposition; returns the disposition."""
    assert response["X-Content-Type-Options"] == "nosniff"
    csp = response["Content-Security-Policy"]
    for part in csp_has:
        assert part in csp, csp
    disposition = response["Content-Disposition"]
    assert re.fullmatch(
        r'(attachment|inline); filename="[A-Za-z0-9._()+,=@\[\] -]+"(; filename\*=UTF-8\'\'\S+)?', disposition
    ), disposition
    return disposition


def content_of(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


@pytest.fixture
def cleanup_audio():
    from transcription.models import Transcription

    yield
    for job in Transcription.objects.exclude(audio=""):
        job.audio.delete(save=False)


# --- the reproduced attack ---------------------------------------------------------------------------


def test_polyglot_uploaded_as_notes_html_is_served_as_wav(
    tenant, owner_client, make_member, login, grant, tmp_path, cleanup_audio
):
    grant(tenant, 50_000)
    job = upload_as_member(tenant, make_member, login, tmp_path)
    url = reverse("dashboard:transcription_audio", args=[job.pk])

    full = owner_client.get(url)
    assert full.status_code == 200
    assert full["Content-Type"] in ("audio/wav", "audio/x-wav")
    assert "html" not in full["Content-Type"]
    disposition = assert_file_headers(full)
    assert disposition == 'inline; filename="notes.wav"'
    assert content_of(full) == polyglot_bytes(tmp_path)  # the stored bytes, unchanged

    # The player's Range requests keep working, with the same protections.
    part = owner_client.get(url, HTTP_RANGE="bytes=0-11")
    assert part.status_code == 206 and part.content[:4] == b"RIFF" and part.content[8:12] == b"WAVE"
    assert part["Content-Type"] in ("audio/wav", "audio/x-wav")
    assert part["Content-Range"].startswith("bytes 0-11/")
    assert_file_headers(part)
    past_end = owner_client.get(url, HTTP_RANGE="bytes=999999999-")
    assert past_end.status_code == 416 and past_end["X-Content-Type-Options"] == "nosniff"


def test_polyglot_through_the_api_with_a_lying_content_type(tenant, owner_client, api_client, grant, cleanup_audio):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tests.audio_helpers_core import tone_wav

    grant(tenant, 50_000)
    upload = SimpleUploadedFile("notes.html", tone_wav(1.0) + PAYLOAD, content_type="text/html")
    created = api_client.post("/api/v1/transcriptions", {"file": upload}, format="multipart")
    assert created.status_code in (201, 202), created.content
    job = tenant.transcriptions.get()
    response = owner_client.get(reverse("dashboard:transcription_audio", args=[job.pk]))
    assert response["Content-Type"] in ("audio/wav", "audio/x-wav")
    assert assert_file_headers(response) == 'inline; filename="notes.wav"'


def test_another_tenants_audio_and_downloads_are_404(tenant, other_tenant, owner_client, make_job, cleanup_audio):
    foreign = make_job(other_tenant, filename="globex.wav")
    foreign.audio.save("x", ContentFile(b"RIFF0000WAVE"), save=True)
    assert owner_client.get(reverse("dashboard:transcription_audio", args=[foreign.pk])).status_code == 404
    for fmt in ("txt", "srt", "vtt", "json"):
        assert owner_client.get(reverse("dashboard:transcription_download", args=[foreign.pk, fmt])).status_code == 404


# --- the type comes from the bytes -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("format_name", "expected"),
    [
        ("wav", "audio/wav"),
        ("mp3", "audio/mpeg"),
        ("flac", "audio/flac"),
        ("ogg", "audio/ogg"),
        ("matroska,webm", "audio/webm"),
        ("mov,mp4,m4a,3gp,3g2,mj2", "audio/mp4"),
        ("aiff", "audio/aiff"),
        ("html", "application/octet-stream"),
        ("", "application/octet-stream"),
        (None, "application/octet-stream"),
    ],
)
def test_container_format_maps_to_an_audio_type(format_name, expected):
    assert audio_type_for_container(format_name)[0] == expected


def test_probe_of_stored_files(tmp_path):
    from tests.audio_helpers_core import tone_wav

    wav = tmp_path / "x.html"
    wav.write_bytes(tone_wav(0.5) + PAYLOAD)
    assert audio_type_for_file(wav) == ("audio/wav", "wav")
    page = tmp_path / "y.wav"
    page.write_bytes(PAYLOAD * 50)
    assert audio_type_for_file(page) == ("application/octet-stream", "bin")
    assert audio_type_for_file(tmp_path / "missing.wav") == ("application/octet-stream", "bin")


def test_stored_non_audio_is_octet_stream_even_with_an_audio_name(tenant, owner_client, make_job, cleanup_audio):
    job = make_job(tenant, filename="song.mp3")
    job.audio.save("x", ContentFile(PAYLOAD), save=True)
    response = owner_client.get(reverse("dashboard:transcription_audio", args=[job.pk]))
    assert response["Content-Type"] == "application/octet-stream"
    assert assert_file_headers(response) == 'inline; filename="song.bin"'


# --- filenames ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (HOSTILE_NAME, 'attachment; filename="evil_.html"'),
        ("notes.wav", 'attachment; filename="notes.wav"'),
        ("C:\\Users\\a\\talk.wav", 'attachment; filename="talk.wav"'),
        (
            "会议 记录.wav",
            "attachment; filename=\"download.wav\"; filename*=UTF-8''%E4%BC%9A%E8%AE%AE%20%E8%AE%B0%E5%BD%95.wav",
        ),
        ("Ünïcode.srt", "attachment; filename=\"Unicode.srt\"; filename*=UTF-8''%C3%9Cn%C3%AFcode.srt"),
        ("x\u202etxt.exe", 'attachment; filename="xtxt.exe"'),
        ("..", 'attachment; filename="download"'),
        ("", 'attachment; filename="download"'),
    ],
)
def test_content_disposition_is_sanitized(name, expected):
    assert content_disposition(name) == expected


def test_safe_filename_keeps_the_extension_when_shortening():
    name = safe_filename("a" * 400 + ".wav")
    assert len(name) <= 150 and name.endswith(".wav")


def test_hostile_filename_gives_safe_headers_on_audio_and_transcripts(tenant, owner_client, make_job, cleanup_audio):
    from tests.audio_helpers_core import tone_wav

    job = make_job(tenant, filename=HOSTILE_NAME)
    job.audio.save("x", ContentFile(tone_wav(0.5)), save=True)
    audio = owner_client.get(reverse("dashboard:transcription_audio", args=[job.pk]))
    assert assert_file_headers(audio) == 'inline; filename="evil_.wav"'
    for fmt in ("txt", "srt", "vtt", "json"):
        response = owner_client.get(reverse("dashboard:transcription_download", args=[job.pk, fmt]))
        assert response.status_code == 200
        assert assert_file_headers(response) == f'attachment; filename="evil_.{fmt}"'
        assert "html" not in response["Content-Type"]


def test_non_ascii_transcript_name(tenant, owner_client, make_job):
    job = make_job(tenant, filename="会议.wav")
    response = owner_client.get(reverse("dashboard:transcription_download", args=[job.pk, "srt"]))
    assert (
        assert_file_headers(response)
        == "attachment; filename=\"download.srt\"; filename*=UTF-8''%E4%BC%9A%E8%AE%AE.srt"
    )


# --- every other download ----------------------------------------------------------------------------


def test_api_transcript_download(tenant, api_client, make_job):
    job = make_job(tenant, filename="<script>.html")
    for fmt in ("txt", "srt", "vtt", "json"):
        response = api_client.get(f"/api/v1/transcriptions/{job.pk}/transcript", {"format": fmt})
        assert response.status_code == 200
        assert assert_file_headers(response) == f'attachment; filename="{job.pk}.{fmt}"'


@pytest.fixture
def fake_pdf(monkeypatch):
    monkeypatch.setattr("billing.statements.statement_pdf", lambda *, statement: b"%PDF-1.4 test\n%%EOF\n")


def test_dashboard_statement_html_and_pdf(tenant, owner_client, grant, fake_pdf):
    grant(tenant, 500)
    period = timezone.now().strftime("%Y-%m")
    url = reverse("dashboard:billing_statement", args=[period])
    html = owner_client.get(url)
    assert html.status_code == 200 and html["Content-Type"].startswith("text/html")
    assert_file_headers(html, csp_has=("sandbox", "default-src 'none'", "style-src 'unsafe-inline'"))
    assert "script-src" not in html["Content-Security-Policy"]
    pdf = owner_client.get(url, {"format": "pdf"})
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    assert assert_file_headers(pdf) == f'attachment; filename="tingxie-statement-{period}.pdf"'


def test_api_statement_html_and_pdf(tenant, api_client, grant, fake_pdf):
    grant(tenant, 500)
    period = timezone.now().strftime("%Y-%m")
    url = reverse("billing-statement", kwargs={"period": period})
    html = api_client.get(url)
    assert html.status_code == 200 and html["Content-Type"].startswith("text/html")
    assert_file_headers(html, csp_has=("sandbox", "default-src 'none'", "style-src 'unsafe-inline'"))
    pdf = api_client.get(url, {"format": "pdf"})
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    assert assert_file_headers(pdf) == f'attachment; filename="tingxie-{tenant.slug}-{period}.pdf"'


def test_admin_ledger_csv(tenant, client):
    from django.contrib.auth.models import User

    from billing.services import tokens_grant

    entry = tokens_grant(tenant=tenant, tokens=10, memo='=HYPERLINK("x")')
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    response = client.post("/admin/billing/ledgerentry/", {"action": "export_csv", "_selected_action": [entry.pk]})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert assert_file_headers(response) == 'attachment; filename="ledger.csv"'


@pytest.mark.parametrize("fmt", ["text", "srt", "vtt"])
def test_openai_text_responses(tenant, api_client, grant, monkeypatch, fmt, cleanup_audio):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tests.audio_helpers_core import tone_wav
    from transcription.models import Transcription

    def finished(job, *, timeout_s, **_):
        Transcription.objects.filter(pk=job.pk).update(
            status="succeeded", text="<script>alert(1)</script>", segments=[{"start": 0.0, "end": 1.0, "text": "hi"}]
        )
        return Transcription.objects.get(pk=job.pk)

    monkeypatch.setattr("transcription.api.openai.wait_until_final", finished)
    grant(tenant, 50_000)
    upload = SimpleUploadedFile("notes.html", tone_wav(1.0), content_type="text/html")
    response = api_client.post(
        "/v1/audio/transcriptions", {"file": upload, "model": "whisper-1", "response_format": fmt}, format="multipart"
    )
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    job = tenant.transcriptions.get()
    ext = "txt" if fmt == "text" else fmt
    assert assert_file_headers(response) == f'inline; filename="{job.pk}.{ext}"'


# --- in a real browser -------------------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_browser_opening_the_polyglot_runs_no_script(
    live_server, tenant, owner, make_member, login, grant, new_page, tmp_path, cleanup_audio
):
    from tenants.models import ApiKey
    from tests.conftest import wait_for
    from tests.dashboard.conftest import browser_login
    from transcription.models import Transcription

    grant(tenant, 50_000)
    job = upload_as_member(tenant, make_member, login, tmp_path)
    keys_before = ApiKey.objects.filter(tenant=tenant).count()
    audio_url = reverse("dashboard:transcription_audio", args=[job.pk])

    page = new_page()
    browser_login(page, owner.email)
    key_page_requests = []
    page.on("request", lambda r: "/app/keys/" in r.url and key_page_requests.append(r.url))

    response = page.goto(audio_url)
    assert response.status == 200
    assert response.headers["content-type"] in ("audio/wav", "audio/x-wav")
    assert "sandbox" in response.headers["content-security-policy"]
    time.sleep(2)  # the script, had it run, fetches /app/keys/ at once; the control below takes far less
    assert page.title() != "PWNED"
    assert page.evaluate("window.name") != "pwned"
    assert page.evaluate("document.getElementById('pwned-marker') === null")
    assert key_page_requests == []
    assert ApiKey.objects.filter(tenant=tenant).count() == keys_before

    # The dashboard's player still loads, seeks and plays the same file (Range requests, 206).
    Transcription.objects.filter(pk=job.pk).update(
        status="succeeded", progress=1.0, text="hello", segments=[{"start": 0.5, "end": 1.0, "text": "hello"}]
    )
    ranges = []
    page.on("response", lambda r: audio_url in r.url and ranges.append(r.status))
    page.goto(reverse("dashboard:transcription_detail", args=[job.pk]))
    page.locator(".segments button.ts").first.click()
    page.wait_for_function("document.getElementById('player').readyState >= 1")
    assert page.evaluate("document.getElementById('player').error") is None
    assert page.evaluate("document.getElementById('player').duration") == pytest.approx(1.5, abs=0.05)
    assert 206 in ranges or 200 in ranges

    # Control: the same bytes served the old way (text/html, same origin, no CSP) do run and create a key,
    # so the checks above would have caught it.
    control_url = f"{live_server.url}/app/polyglot-control/"
    page.route(control_url, lambda route: route.fulfill(status=200, content_type="text/html", body=PAYLOAD))
    page.goto(control_url)
    wait_for(lambda: ApiKey.objects.filter(tenant=tenant, name="pwned").exists(), timeout=10, message="control key")
    assert page.title() == "PWNED"
