"""Cross-job batching on the ASR worker (issue 13): a batch gives each transcription exactly what it gets alone,
bills each once, and one transcription's cancel or failure never touches its batch-mates."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import close_old_connections, connection

from billing.models import LedgerEntry
from tests.audio_samples import silence, speak_fixture, write_wav
from tests.conftest import assert_ledger_consistent
from tests.factories import TenantFactory
from transcription import services
from transcription.engines import get_engine
from transcription.models import Transcription

CLIPS = ("zh_welcome", "zh_park", "en_welcome", "zh_park", "zh_welcome", "en_welcome")


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def limits(monkeypatch, **values):
    engine = get_engine()
    engine.load()
    base = {"budget_s": 60.0, "max_items": 32, "max_jobs": 32, "max_wait_ms": 0.0, "window_s": 30.0}
    kind = engine.device.split(":")[0]
    monkeypatch.setattr(engine, "batching", {kind: {**base, **values}})
    return engine


def clip(i: int, peak: float = 0.5) -> np.ndarray:
    """Distinct recordings: a sentence, a pause, another sentence for some (two speech pieces)."""
    parts = [silence(0.1 * (i + 1)), speak_fixture(CLIPS[i % len(CLIPS)]), silence(1.2)]
    if i % 3 == 0:
        parts.append(speak_fixture(CLIPS[(i + 1) % len(CLIPS)]))
    audio = np.concatenate(parts).astype(np.float32)
    return audio * (peak / np.abs(audio).max())


def submit(tenant, tmp_path, i: int, grant, peak: float = 0.5) -> Transcription:
    data = write_wav(tmp_path / f"c{i}.wav", clip(i, peak)).read_bytes()
    return services.transcription_create(
        tenant=tenant, uploaded_file=SimpleUploadedFile(f"c{i}.wav", data, content_type="audio/wav"), options={}
    )


def debits(tid) -> int:
    return LedgerEntry.objects.filter(transcription_id=tid, kind="debit").count()


def result(tid) -> tuple:
    t = Transcription.objects.get(pk=tid)
    return t.status, t.text, t.segments, t.language


@pytest.mark.django_db(transaction=True)
def test_batched_transcriptions_get_exactly_what_each_gets_alone_under_concurrency(
    require_postgres, media, tmp_path, grant, monkeypatch, caplog
):
    n = 6
    alone_tenant, batch_tenant = TenantFactory(slug="alone"), TenantFactory(slug="batch")  # no cache hits between
    grant(alone_tenant, 100_000)
    grant(batch_tenant, 100_000)
    monkeypatch.setattr("transcription.services.common.transcription_enqueue", lambda **kw: None)
    monkeypatch.setattr("transcription.services.submit.transcription_enqueue", lambda **kw: None)

    limits(monkeypatch, max_jobs=1)
    alone = {}
    for i in range(n):
        t = submit(alone_tenant, tmp_path, i, grant)
        assert services.transcription_run(transcription_id=t.pk) == "succeeded"
        alone[i] = result(t.pk)

    limits(monkeypatch, max_jobs=4, max_items=3, budget_s=12.0)  # two workers must share the six jobs
    jobs = [submit(batch_tenant, tmp_path, i, grant) for i in range(n)]
    outcomes: dict = {}
    gate = threading.Barrier(2)

    def worker(first):
        try:
            gate.wait()
            outcomes[first] = services.transcription_run(transcription_id=first)
        finally:
            close_old_connections()
            connection.close()

    caplog.set_level("INFO", logger="transcription.batches")
    threads = [threading.Thread(target=worker, args=(jobs[k].pk,)) for k in (0, 1)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    # The queued tasks of the jobs a batch took: they find them claimed and skip.
    for t in jobs[2:]:
        assert services.transcription_run(transcription_id=t.pk) == "skipped"

    assert set(outcomes.values()) <= {"succeeded", "skipped"}, outcomes
    for i, t in enumerate(jobs):
        assert result(t.pk) == alone[i], i
        assert debits(t.pk) == 1
        assert Transcription.objects.get(pk=t.pk).attempt == 1  # claimed once, by one worker
    sizes = [int(r.getMessage().split()[2]) for r in caplog.records if r.getMessage().startswith("ASR batch:")]
    assert max(sizes) > 1, sizes  # transcriptions really shared rounds
    assert_ledger_consistent(batch_tenant)


@pytest.mark.django_db
def test_a_transcription_canceled_while_batched_is_not_billed(media, tmp_path, tenant, grant, monkeypatch):
    grant(tenant, 100_000)
    monkeypatch.setattr("transcription.services.submit.transcription_enqueue", lambda **kw: None)
    engine = limits(monkeypatch)
    a, b, c = (submit(tenant, tmp_path, i, grant) for i in range(3))
    real = engine.transcribe_windows
    seen = []

    def cancel_b_then_recognize(windows):
        seen.append(len(windows))
        if len(seen) == 1:
            services.transcription_cancel(transcription=Transcription.objects.get(pk=b.pk))
        return real(windows)

    monkeypatch.setattr(engine, "transcribe_windows", cancel_b_then_recognize)
    assert services.transcription_run(transcription_id=a.pk) == "succeeded"

    assert seen[0] == 3  # b was in the batch when it was canceled
    assert Transcription.objects.get(pk=b.pk).status == "canceled"
    assert debits(b.pk) == 0
    assert LedgerEntry.objects.filter(transcription_id=b.pk, kind="release").count() == 1
    for t in (a, c):
        assert Transcription.objects.get(pk=t.pk).status == "succeeded"
        assert debits(t.pk) == 1
    assert_ledger_consistent(tenant)


@pytest.mark.django_db
def test_a_poison_file_in_a_batch_fails_only_its_own_transcription(media, tmp_path, tenant, grant, monkeypatch):
    grant(tenant, 100_000)
    monkeypatch.setattr("transcription.services.submit.transcription_enqueue", lambda **kw: None)
    limits(monkeypatch)
    a, poison, c = (submit(tenant, tmp_path, i, grant) for i in range(3))
    name = Transcription.objects.get(pk=poison.pk).audio.name
    default_storage.delete(name)
    default_storage.save(name, SimpleUploadedFile("x", b"RIFF\x00\x00\x00\x00WAVEfmt garbage" * 50))

    assert services.transcription_run(transcription_id=a.pk) == "succeeded"

    bad = Transcription.objects.get(pk=poison.pk)
    assert bad.status == "failed" and bad.error_code == "unsupported_audio", (bad.status, bad.error_code)
    assert debits(poison.pk) == 0
    for t in (a, c):
        assert Transcription.objects.get(pk=t.pk).status == "succeeded"
        assert debits(t.pk) == 1
    assert_ledger_consistent(tenant)


@pytest.mark.django_db
def test_a_model_call_that_fails_for_one_window_fails_only_that_transcription(
    media, tmp_path, tenant, grant, monkeypatch
):
    grant(tenant, 100_000)
    monkeypatch.setattr("transcription.services.submit.transcription_enqueue", lambda **kw: None)
    engine = limits(monkeypatch)
    jobs = [submit(tenant, tmp_path, i, grant, peak=0.9 if i == 1 else 0.5) for i in range(3)]
    real = engine.generate_batch
    calls = []

    def generate(pieces, kwargs):  # the loud recording (jobs[1]) makes the model fail
        calls.append(len(pieces))
        if any(np.abs(p).max() > 0.8 for p in pieces):
            raise RuntimeError("the model choked on this piece")
        return real(pieces, kwargs)

    monkeypatch.setattr(engine, "generate_batch", generate)
    services.transcription_run(transcription_id=jobs[0].pk)

    states = [Transcription.objects.get(pk=t.pk) for t in jobs]
    assert [t.status for t in states] == ["succeeded", "failed", "succeeded"]
    assert states[1].error_code == "internal_error"
    assert calls[0] > 1  # one shared call first, then each transcription alone
    assert [debits(t.pk) for t in states] == [1, 0, 1]
    assert_ledger_consistent(tenant)


@pytest.mark.django_db
def test_a_worker_waits_for_batch_mates_only_under_concurrent_load(media, tmp_path, tenant, grant, monkeypatch):
    """A lone job does not pay max_wait_ms; once a batch had company, the next ones wait for late arrivals."""
    from transcription.services import batching

    grant(tenant, 100_000)
    monkeypatch.setattr("transcription.services.submit.transcription_enqueue", lambda **kw: None)
    limits(monkeypatch, max_jobs=8, max_wait_ms=250.0)
    monkeypatch.setattr(batching, "_company_at", float("-inf"))
    waits: list[float] = []
    real_sleep = batching.time.sleep
    monkeypatch.setattr(batching.time, "sleep", lambda s: waits.append(s) or real_sleep(min(s, 0.01)))

    lone = submit(tenant, tmp_path, 0, grant)
    assert services.transcription_run(transcription_id=lone.pk) == "succeeded"
    assert 0.25 not in waits, "a lone job waited for batch-mates"

    pair = [submit(tenant, tmp_path, i, grant) for i in (1, 2)]
    assert services.transcription_run(transcription_id=pair[0].pk) == "succeeded"
    assert Transcription.objects.get(pk=pair[1].pk).status == "succeeded"  # batched with the first
    assert waits.count(0.25) == 1, waits  # it found company ready: it waited once for more

    later = submit(tenant, tmp_path, 3, grant)
    assert services.transcription_run(transcription_id=later.pk) == "succeeded"
    assert waits.count(0.25) == 2, waits  # alone, but right after a batch with company: it waited too
