"""Stored audio in an S3-compatible bucket (issue 12.1): uploads go to the bucket, workers stream from it in
bounded memory, deletes and the orphan sweep reach it, and nothing is written to the local MEDIA_ROOT.

The bucket is served by moto's standalone server (the real S3 HTTP protocol) on a local port; every test has a
bucket of its own (tests/conftest.py s3_storage).
"""

from __future__ import annotations

import io
import time
import tracemalloc
import wave

import numpy as np
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from portal.env import storage_from_url
from tests.audio_samples import silence, speak_fixture, write_wav
from tests.conftest import WorkerProcess, assert_ledger_consistent, wait_for
from transcription import services
from transcription.audio import decode_stream, probe, served_type
from transcription.models import AUDIO_DIR, Transcription


def _media_files(settings) -> list:
    root = settings.MEDIA_ROOT
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def _speech_wav(tmp_path, name="speech.wav", seconds: float = 4.0) -> bytes:
    unit = np.concatenate([speak_fixture("zh_park"), silence(0.5)])
    body = np.tile(unit, int(seconds * 16000 / len(unit)) + 1)[: int(seconds * 16000)]
    return write_wav(tmp_path / name, body.astype(np.float32)).read_bytes()


def _noise_wav(seconds: float) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((np.random.default_rng(1).standard_normal(int(16000 * seconds)) * 1000).astype("<i2").tobytes())
    return buf.getvalue()


# --- settings ------------------------------------------------------------------------------------------------


def test_storage_url_forms():
    assert storage_from_url("") == {"BACKEND": "django.core.files.storage.FileSystemStorage"}
    assert storage_from_url("file:///srv/media")["BACKEND"] == "django.core.files.storage.FileSystemStorage"
    s3 = storage_from_url(
        "s3://AKIA%2Fkey:se%40cret@audio-bucket/tingxie/prod?endpoint_url=http://minio:9000&region=cn-north-1"
        "&addressing_style=path"
    )
    assert s3 == {
        "BACKEND": "portal.storage.StreamingS3Storage",
        "OPTIONS": {
            "bucket_name": "audio-bucket",
            "location": "tingxie/prod",
            "access_key": "AKIA/key",
            "secret_key": "se@cret",
            "endpoint_url": "http://minio:9000",
            "region_name": "cn-north-1",
            "addressing_style": "path",
            "file_overwrite": True,
            "default_acl": None,
        },
    }
    # No credentials in the URL: boto3's own sources (environment, instance role) apply.
    assert "access_key" not in storage_from_url("s3://audio")["OPTIONS"]
    with pytest.raises(ImproperlyConfigured, match="s3://BUCKET"):
        storage_from_url("gs://bucket")
    with pytest.raises(ImproperlyConfigured, match="unknown parameter 'acl'"):
        storage_from_url("s3://bucket?acl=public-read")


# --- the web and worker paths ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_upload_goes_to_the_bucket_and_the_worker_reads_it_from_there(
    s3_storage, api_client, tenant, grant, settings, tmp_path
):
    grant(tenant, 10_000)
    response = api_client.post(
        "/api/v1/transcriptions",
        {"file": ContentFile(_speech_wav(tmp_path), name="speech.wav")},
        format="multipart",
    )
    assert response.status_code == 202, response.content
    job = Transcription.objects.get(pk=response.json()["id"])
    assert s3_storage.keys() == [job.audio.name] == [f"{AUDIO_DIR}/{tenant.pk}/{job.pk}"]
    assert services.transcription_run(transcription_id=job.pk) == "succeeded"
    job.refresh_from_db()
    assert job.text and job.duration_s == pytest.approx(4.0, abs=0.1), (job.text, job.duration_s)
    assert _media_files(settings) == []  # nothing on local disk
    assert_ledger_consistent(tenant)


@pytest.mark.django_db
def test_audio_gone_from_the_bucket_fails_the_job_audio_missing_uncharged(s3_storage, api_client, tenant, grant):
    grant(tenant, 10_000)
    response = api_client.post(
        "/api/v1/transcriptions", {"file": ContentFile(_noise_wav(1.0), name="a.wav")}, format="multipart"
    )
    job = Transcription.objects.get(pk=response.json()["id"])
    s3_storage.server.client().delete_object(Bucket=s3_storage.name, Key=job.audio.name)
    assert services.transcription_run(transcription_id=job.pk) == "failed"
    job.refresh_from_db()
    assert job.error_code == "audio_missing" and not job.billed_tokens
    assert_ledger_consistent(tenant)


@pytest.mark.django_db
def test_delete_removes_the_object_from_the_bucket(
    s3_storage, api_client, tenant, grant, django_capture_on_commit_callbacks
):
    grant(tenant, 10_000)
    response = api_client.post(
        "/api/v1/transcriptions", {"file": ContentFile(_noise_wav(1.0), name="a.wav")}, format="multipart"
    )
    job_id = response.json()["id"]
    assert len(s3_storage.keys()) == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert api_client.delete(f"/api/v1/transcriptions/{job_id}").status_code == 204
    assert s3_storage.keys() == []


@pytest.mark.django_db
def test_orphan_sweep_reaches_the_bucket(s3_storage, api_client, tenant, grant, settings):
    """An object no row references goes once it is old enough; a referenced one stays."""
    grant(tenant, 10_000)
    response = api_client.post(
        "/api/v1/transcriptions", {"file": ContentFile(_noise_wav(1.0), name="a.wav")}, format="multipart"
    )
    kept = Transcription.objects.get(pk=response.json()["id"]).audio.name
    orphan = default_storage.save(f"{AUDIO_DIR}/{tenant.pk}/0123456789abcdef", ContentFile(b"killed mid-upload"))
    assert s3_storage.keys() == sorted([kept, orphan])
    assert services.transcription_orphans_sweep()["audio"] == 0  # too young (ORPHAN_AUDIO_MAX_AGE_SECONDS)
    settings.ORPHAN_AUDIO_MAX_AGE_SECONDS = 0
    time.sleep(1.1)  # S3 modification times have one-second resolution
    assert services.transcription_orphans_sweep()["audio"] == 1
    assert s3_storage.keys() == [kept]


@pytest.mark.django_db
def test_dashboard_audio_link_reads_from_the_bucket(s3_storage, client, tenant, grant, api_client):
    from django.contrib.auth import get_user_model

    from tenants.models import Membership

    grant(tenant, 10_000)
    data = _noise_wav(1.0)
    response = api_client.post("/api/v1/transcriptions", {"file": ContentFile(data, name="a.wav")}, format="multipart")
    user = get_user_model().objects.create_user(username="o", email="o@example.com", password="pw-long-enough-1")
    Membership.objects.create(tenant=tenant, user=user, role="owner")
    client.force_login(user)
    got = client.get(f"/app/transcriptions/{response.json()['id']}/audio/", HTTP_RANGE="bytes=0-99")
    assert got.status_code == 206 and got["Content-Type"] == "audio/wav"
    assert got.content == data[:100] and got["Content-Range"] == f"bytes 0-99/{len(data)}"


# --- bounded memory ------------------------------------------------------------------------------------------------


def test_reading_from_the_bucket_streams_in_bounded_memory(s3_storage):
    """Decoding 32 MB of stored audio never holds the object: Python allocations stay a fraction of its size
    (django-storages' stock S3File downloads the whole object into memory first; this test fails with it)."""
    data = _noise_wav(1000.0)  # 32 MB of PCM
    name = default_storage.save("audio/bench/big", ContentFile(data))
    tracemalloc.start()
    try:
        with default_storage.open(name, "rb") as f:
            assert served_type(f) == ("audio/wav", "wav")
            assert probe(f).duration_s == pytest.approx(1000.0)
            with decode_stream(f, max_seconds=2000, chunk_seconds=10.0) as stream:
                samples = sum(chunk.shape[0] for chunk in stream)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert samples == 16000 * 1000
    assert peak < len(data) / 4, f"peak {peak / 1e6:.1f} MB for a {len(data) / 1e6:.1f} MB object"


def test_a_missing_object_is_file_not_found(s3_storage):
    with pytest.raises(FileNotFoundError):
        default_storage.open("audio/1/missing", "rb")


# --- a real worker process with an empty disk of its own ------------------------------------------------------


@pytest.mark.slow
def test_a_worker_process_with_its_own_empty_disk_runs_jobs_from_the_bucket(
    transactional_db, s3_storage, tenant, grant, tmp_path
):
    grant(tenant, 10_000)
    from django.core.files.uploadedfile import SimpleUploadedFile

    job = services.transcription_create(
        tenant=tenant, uploaded_file=SimpleUploadedFile("s.wav", _speech_wav(tmp_path)), options={}
    )
    worker_media = tmp_path / "worker-media"
    worker_media.mkdir()
    worker = WorkerProcess(
        extra_env={
            "STORAGE_URL": s3_storage.url,
            "MEDIA_ROOT": str(worker_media),
            "FILE_UPLOAD_TEMP_DIR": str(tmp_path / "worker-tmp"),
        }
    )
    try:
        wait_for(
            lambda: Transcription.objects.filter(pk=job.pk, status__in=["succeeded", "failed"]).exists(),
            timeout=90,
            message="the worker to finish the job",
        )
    finally:
        worker.stop()
    job.refresh_from_db()
    assert job.status == "succeeded" and job.text, (job.status, job.error_code, worker.log()[-2000:])
    assert list(worker_media.rglob("*")) == []
    assert_ledger_consistent(tenant)
