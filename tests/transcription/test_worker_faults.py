"""Worker-side faults: a slow model load keeps its lease, a lost database interrupts (never fails) the attempt."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import OperationalError
from django.utils import timezone

from billing.models import LedgerEntry
from tests.audio_helpers_core import tone_wav
from tests.conftest import assert_ledger_consistent
from transcription import services
from transcription.models import Transcription

pytestmark = pytest.mark.django_db


def _submit(api_client, grant, tenant) -> str:
    grant(tenant, 1000)
    response = api_client.post(
        "/api/v1/transcriptions", {"file": SimpleUploadedFile("a.wav", tone_wav(1.0))}, format="multipart"
    )
    assert response.status_code == 202, response.content
    return response.json()["id"]


def test_the_lease_is_renewed_once_the_model_has_loaded(api_client, grant, tenant, settings, monkeypatch):
    import transcription.pipeline as pipeline
    from transcription.engines import get_engine

    settings.JOB_LEASE_SECONDS = 1
    tid = _submit(api_client, grant, tenant)
    engine = get_engine()
    monkeypatch.setattr(engine, "load", lambda: time.sleep(1.5))  # slower than the lease
    seen = {}
    real = pipeline.recognize_file_steps

    def watch(*args, **kwargs):
        seen["lease"] = Transcription.objects.values_list("lease_expires_at", flat=True).get(pk=tid)
        seen["now"] = timezone.now()
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "recognize_file_steps", watch)
    assert services.transcription_run(transcription_id=tid) == "succeeded"
    assert seen["lease"] > seen["now"] + timedelta(seconds=0.5)  # renewed after the 1.5 s load


def test_a_lost_database_interrupts_the_attempt_and_the_sweeper_retries_it(
    api_client, grant, tenant, settings, monkeypatch
):
    import transcription.pipeline as pipeline

    tid = _submit(api_client, grant, tenant)
    real = pipeline.recognize_file_steps

    def database_gone(*args, **kwargs):
        raise OperationalError("terminating connection due to administrator command")
        yield  # a generator, like the real steps: the error comes with the first step

    monkeypatch.setattr(pipeline, "recognize_file_steps", database_gone)
    assert services.transcription_run(transcription_id=tid) == "interrupted"
    row = Transcription.objects.get(pk=tid)
    assert row.status == "running" and row.attempt == 1 and row.error_code == ""  # not failed, not charged
    assert not LedgerEntry.objects.filter(transcription_id=tid, kind__in=["debit", "release"]).exists()

    Transcription.objects.filter(pk=tid).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert services.transcription_sweep()["requeued"] == 1
    monkeypatch.setattr(pipeline, "recognize_file_steps", real)
    assert services.transcription_run(transcription_id=tid) == "succeeded"
    assert Transcription.objects.get(pk=tid).attempt == 2
    assert LedgerEntry.objects.filter(transcription_id=tid, kind="debit").count() <= 1
    assert_ledger_consistent(tenant)
