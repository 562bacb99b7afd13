"""No orphaned customer audio: what a server killed mid-upload leaves (stored audio no row references, Django's
temporary upload files) is removed by the orphan sweep; referenced and fresh files never are."""

from __future__ import annotations

import http.client
import io
import os
import signal
import time
import wave
from pathlib import Path

import numpy as np
import pytest
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile

from billing.models import BalanceAccount, LedgerEntry
from tests.audio_helpers_core import tone_wav
from tests.conftest import assert_ledger_consistent
from transcription import services
from transcription.models import Transcription
from transcription.services import orphans

HOUR = 3600


@pytest.fixture
def dirs(settings, tmp_path) -> tuple[Path, Path]:
    """This test's own MEDIA_ROOT and upload temp folder (the sweep never sees the shared var/ ones)."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path / "upload-tmp")
    os.makedirs(settings.FILE_UPLOAD_TEMP_DIR)
    cache.delete(orphans._ORPHAN_CURSOR_KEY)
    yield Path(settings.MEDIA_ROOT), Path(settings.FILE_UPLOAD_TEMP_DIR)
    cache.delete(orphans._ORPHAN_CURSOR_KEY)


def _age(path: Path, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t))


def _store(name: str, *, age_s: float) -> str:
    stored = default_storage.save(name, ContentFile(b"RIFF audio"))
    _age(Path(default_storage.path(stored)), age_s)
    return stored


def _stored_files(media: Path) -> set[str]:
    return {p.relative_to(media).as_posix() for p in media.rglob("*") if p.is_file()}


def _submit(api_client) -> Transcription:
    upload = SimpleUploadedFile("clip.wav", tone_wav(1.0), content_type="audio/wav")
    response = api_client.post("/api/v1/transcriptions", {"file": upload}, format="multipart")
    assert response.status_code == 202, response.content
    return Transcription.objects.get(pk=response.json()["id"])


# --- the sweep, in process -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_old_unreferenced_audio_goes_referenced_and_fresh_audio_stays(
    api_client, tenant, grant, dirs, django_capture_on_commit_callbacks
):
    media, _ = dirs
    grant(tenant, 10_000)
    kept = _submit(api_client)
    deleted = _submit(api_client)
    with django_capture_on_commit_callbacks(execute=True):
        services.transcription_delete(transcription=deleted)  # its audio is gone already; its row stays
    _age(media / kept.audio.name, 2 * HOUR)  # referenced: kept however old
    orphan = _store(f"audio/{tenant.pk}/0b9e6f0e-orphan", age_s=2 * HOUR)
    fresh = _store(f"audio/{tenant.pk}/0b9e6f0e-fresh", age_s=60)  # an upload whose row may still commit
    other_tenant_orphan = _store("audio/999/old", age_s=2 * HOUR)

    counts = services.transcription_orphans_sweep()

    assert counts == {"audio": 2, "temp_uploads": 0}
    assert _stored_files(media) == {kept.audio.name, fresh}
    assert orphan not in _stored_files(media) and other_tenant_orphan not in _stored_files(media)
    assert Transcription.objects.get(pk=deleted.pk).audio.name == ""
    assert services.transcription_orphans_sweep() == {"audio": 0, "temp_uploads": 0}


@pytest.mark.django_db
def test_nothing_stored_yet_is_fine(dirs):
    assert services.transcription_orphans_sweep() == {"audio": 0, "temp_uploads": 0}


def test_stale_temporary_upload_files_go_others_stay(settings, dirs):
    _, tmp = dirs
    names = {
        "tmpold.upload.wav": 2 * HOUR,  # Django's TemporaryUploadedFile, left by a killed server
        "tingxie-old.upload": 2 * HOUR,  # ours (submit's _local_path)
        "tmpfresh.upload.mp3": 10,  # a request still reading it
        "notes.txt": 2 * HOUR,  # not an upload: not ours to remove
    }
    for name, age in names.items():
        (tmp / name).write_bytes(b"x")
        _age(tmp / name, age)

    assert orphans._temp_uploads_remove(orphans.timezone.now() - orphans.timedelta(seconds=HOUR)) == 2
    assert sorted(p.name for p in tmp.iterdir()) == ["notes.txt", "tmpfresh.upload.mp3"]


@pytest.mark.django_db
def test_each_run_is_bounded_and_the_next_carries_on(dirs, monkeypatch):
    media, _ = dirs
    monkeypatch.setattr(orphans, "ORPHAN_SWEEP_BATCH", 2)
    for folder, name in [("1", "a"), ("1", "b"), ("1", "c"), ("2", "a"), ("3", "a")]:
        _store(f"audio/{folder}/{name}", age_s=2 * HOUR)

    removed = [services.transcription_orphans_sweep()["audio"] for _ in range(4)]

    assert removed == [2, 2, 1, 0]
    assert _stored_files(media) == set()


@pytest.mark.django_db
def test_max_age_comes_from_settings(api_client, tenant, grant, dirs, settings):
    media, _ = dirs
    orphan = _store(f"audio/{tenant.pk}/recent", age_s=5)
    assert services.transcription_orphans_sweep()["audio"] == 0
    settings.ORPHAN_AUDIO_MAX_AGE_SECONDS = 0
    assert services.transcription_orphans_sweep()["audio"] == 1
    assert orphan not in _stored_files(media)


@pytest.mark.django_db
def test_a_big_upload_spools_into_the_project_temp_dir_and_is_cleaned_up(api_client, tenant, grant, dirs, monkeypatch):
    from django.core.files.uploadedfile import TemporaryUploadedFile

    _, tmp = dirs
    grant(tenant, 100_000)
    seen = []
    real = TemporaryUploadedFile.__init__

    def spy(self, *args, **kwargs):
        real(self, *args, **kwargs)
        seen.append(Path(self.temporary_file_path()).parent)

    monkeypatch.setattr(TemporaryUploadedFile, "__init__", spy)
    upload = SimpleUploadedFile("big.wav", tone_wav(90.0), content_type="audio/wav")  # ~2.9 MB: over 2 MB
    response = api_client.post("/api/v1/transcriptions", {"file": upload}, format="multipart")
    assert response.status_code == 202, response.content
    assert seen == [tmp]
    assert list(tmp.iterdir()) == []  # a finished request leaves nothing behind


@pytest.mark.django_db
def test_the_orphan_sweep_is_scheduled():
    from django_q.models import Schedule

    schedule = Schedule.objects.get(name="transcription-orphan-sweeper")
    assert schedule.func == "transcription.tasks.transcription_orphans_sweep_task"
    assert schedule.repeats == -1


# --- the kill drill: a real server SIGKILLed mid-upload ------------------------------------------------------


def _big_wav(megabytes: int) -> bytes:
    rate = 16_000
    samples = (np.random.default_rng(0).standard_normal(megabytes * 1024 * 1024 // 2) * 3000).astype(np.int16)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return buf.getvalue()


def _multipart(audio: bytes, boundary: str) -> bytes:
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n"
    ).encode()
    return head + audio + f"\r\n--{boundary}--\r\n".encode()


def _leftovers(media: Path, upload_tmp: Path, sys_tmp: Path) -> list[str]:
    audio = [p.relative_to(media).as_posix() for p in (media / "audio").rglob("*") if p.is_file()]
    temp = [p.name for p in upload_tmp.iterdir()] + [f"TMPDIR/{p.name}" for p in sys_tmp.iterdir()]
    return sorted(audio + temp)


@pytest.mark.slow
def test_a_server_killed_mid_upload_leaves_no_orphaned_audio(transactional_db, tenant, api_key, grant, tmp_path,
                                                            monkeypatch, settings):  # fmt: skip
    """SIGKILL the uvicorn process group while the body streams, while Django spools the upload, and while the
    audio is being stored; then the sweep (max age 0) leaves no file without a row, and the ledger is as before."""
    from tests.transcription.test_async_wait import Uvicorn

    media, upload_tmp, sys_tmp = tmp_path / "media", tmp_path / "upload-tmp", tmp_path / "sys-tmp"
    sys_tmp.mkdir()
    monkeypatch.setenv("FILE_UPLOAD_TEMP_DIR", str(upload_tmp))  # made by the server's ready()
    monkeypatch.setenv("TMPDIR", str(sys_tmp))  # any other named temp file would show up here
    settings.MEDIA_ROOT, settings.FILE_UPLOAD_TEMP_DIR = str(media), str(upload_tmp)
    grant(tenant, 10_000_000)
    before = BalanceAccount.objects.get(tenant=tenant)
    ledger_before = LedgerEntry.objects.filter(tenant=tenant).count()
    boundary = "tingxie-drill-boundary"
    body = _multipart(_big_wav(30), boundary)
    started = time.monotonic()

    def upload_and_kill(when) -> str:
        server = Uvicorn(media)
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        try:
            conn.putrequest("POST", "/api/v1/transcriptions")
            conn.putheader("Authorization", f"Bearer {api_key[1]}")
            conn.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
            conn.putheader("Content-Length", str(len(body)))
            conn.endheaders()
            view = memoryview(body)
            step = 256 * 1024
            limit = len(body) // 2 if when == "mid-body" else len(body)
            for i in range(0, limit, step):
                conn.send(view[i : min(i + step, limit)])
            seen = "half the body sent" if when == "mid-body" else _wait_for_phase(when, media, upload_tmp)
            os.killpg(server.proc.pid, signal.SIGKILL)
            return seen
        finally:
            conn.close()
            server.proc.wait(timeout=10)
            server.stop()

    phases = {when: upload_and_kill(when) for when in ("mid-body", "spooling", "storing")}
    left_before = _leftovers(media, upload_tmp, sys_tmp)
    settings.ORPHAN_AUDIO_MAX_AGE_SECONDS = 0
    cache.delete(orphans._ORPHAN_CURSOR_KEY)
    counts = services.transcription_orphans_sweep()
    left_after = _leftovers(media, upload_tmp, sys_tmp)
    print(f"drill: {phases}; left before the sweep: {left_before}; swept {counts}; after: {left_after}")

    rows = {t.audio.name for t in Transcription.objects.filter(tenant=tenant)}
    assert [name for name in left_after if name not in rows] == []  # no file without a row, no temp file
    assert not [name for name in rows if not (media / name).is_file()]  # and no row without its file
    if not rows:  # the kills all came before a commit: not a token moved
        after = BalanceAccount.objects.get(tenant=tenant)
        assert (after.available, after.held) == (before.available, before.held)
        assert LedgerEntry.objects.filter(tenant=tenant).count() == ledger_before
        assert not LedgerEntry.objects.filter(tenant=tenant, kind="hold").exists()
    assert_ledger_consistent(tenant)
    assert time.monotonic() - started < 60


def _wait_for_phase(when: str, media: Path, upload_tmp: Path) -> str:
    """Poll until the server is in the phase to kill it in: its temp upload file or the stored audio exists."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if when == "spooling" and upload_tmp.is_dir() and any(".upload" in p.name for p in upload_tmp.iterdir()):
            return "temp upload file seen"
        if when == "storing" and (media / "audio").is_dir() and any(p.is_file() for p in (media / "audio").rglob("*")):
            return "stored audio seen"
        time.sleep(0.001)
    return f"{when}: not seen within 20 s"
