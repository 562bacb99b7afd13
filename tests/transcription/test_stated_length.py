"""Billing bypass by a lying length header: the hold must rest on a length the decoder honours.

Reproduction (issue 15): PCM in Matroska with the EBML Duration set to 1 s, or an AIFF whose COMM frame
count says 16000, held 8 tokens for 42 minutes of audio and billed 8. Now probe() scans every container
but WAV (whose length FFmpeg clamps to the data present), and the worker extends the hold, or fails the
job uncharged, before it recognizes audio past what the hold covers.
"""

from __future__ import annotations

import dataclasses

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from billing.models import BalanceAccount, LedgerEntry
from billing.services import hold_amount
from tests import audio_samples as samples
from tests.audio_samples import decode_all as decode
from tests.conftest import assert_ledger_consistent
from tests.transcription.test_pipeline import RecordingEngine
from transcription import services
from transcription.audio import probe
from transcription.engines.base import TranscribeOptions
from transcription.models import Transcription
from transcription.pipeline import recognize_file

SECONDS = 20.0
CONTAINERS = sorted(samples.PCM_CONTAINERS)


@pytest.fixture(scope="module")
def lying(tmp_path_factory):
    """{(container, 'under'|'over'|'true'): path}: 20 s of PCM whose header says 1 s, 3000 s, or the truth."""
    folder = tmp_path_factory.mktemp("lying")
    audio = samples.tone(SECONDS)
    files = {}
    for kind in CONTAINERS:
        for claim, stated in (("under", 1.0), ("over", 3000.0), ("true", None)):
            path = samples.pcm_in(audio, folder / f"{claim}.{kind}")
            if stated is not None:
                samples.state_length(path, stated)
            files[(kind, claim)] = path
    return files


@pytest.mark.parametrize("claim", ["under", "over", "true"])
@pytest.mark.parametrize("kind", CONTAINERS)
def test_probe_never_trusts_a_length_the_decoder_does_not_honour(lying, kind, claim):
    path = lying[(kind, claim)]
    probed = probe(path).duration_s
    decoded = decode(path, max_seconds=3600).duration_s
    # The hold may overstate a little (quoted maximum) but never understate what the worker will decode.
    assert probed >= decoded - 0.05, (kind, claim, probed, decoded)
    assert probed <= decoded + 0.1, (kind, claim, probed, decoded)


def _upload(path, name=None):
    return SimpleUploadedFile(name or path.name, path.read_bytes(), content_type="application/octet-stream")


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["mkv", "aiff", "au"])
def test_understated_header_is_held_for_the_real_length(api_client, tenant, grant, lying, kind):
    grant(tenant, 10_000)
    response = api_client.post("/api/v1/transcriptions", {"file": _upload(lying[(kind, "under")])}, format="multipart")
    assert response.status_code == 202, response.content
    assert response.json()["usage"]["held_tokens"] >= hold_amount(duration_s=SECONDS)
    assert_ledger_consistent(tenant)


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["mkv", "aiff", "au"])
def test_overstated_header_does_not_demand_tokens_for_audio_that_is_not_there(api_client, tenant, grant, lying, kind):
    grant(tenant, hold_amount(duration_s=SECONDS) + 10)  # far less than 3000 s would need
    response = api_client.post("/api/v1/transcriptions", {"file": _upload(lying[(kind, "over")])}, format="multipart")
    assert response.status_code == 202, response.content
    assert response.json()["usage"]["held_tokens"] <= hold_amount(duration_s=SECONDS + 0.2)


# --- the worker's backstop: a probe that understates (whatever the cause) never under-bills ------------------


@pytest.fixture
def probe_says_one_second(monkeypatch):
    """A test double for the upload probe: it states 1 s whatever the file holds (the worst header)."""
    import transcription.audio as audio

    real = audio.probe

    monkeypatch.setattr(audio, "probe", lambda path: dataclasses.replace(real(path), duration_s=1.0))


def _submit_short_probed(api_client, lying):
    response = api_client.post(
        "/api/v1/transcriptions", {"file": _upload(lying[("mkv", "true")]), "vad": "false"}, format="multipart"
    )
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["usage"]["held_tokens"] == hold_amount(duration_s=1.0)
    return body["id"]


@pytest.mark.django_db
def test_worker_extends_the_hold_before_recognizing_audio_past_it(
    api_client, tenant, grant, lying, probe_says_one_second
):
    grant(tenant, 10_000)
    job_id = _submit_short_probed(api_client, lying)
    assert services.transcription_run(transcription_id=job_id) == "succeeded"
    job = Transcription.objects.get(pk=job_id)
    assert job.duration_s == pytest.approx(SECONDS, abs=0.1)
    assert job.held_tokens >= hold_amount(duration_s=SECONDS - 0.5)
    extensions = LedgerEntry.objects.filter(transcription=job, kind="hold_extend")
    assert extensions.count() == 1
    assert extensions.get().held_delta == job.held_tokens - hold_amount(duration_s=1.0)
    assert job.billed_tokens == min(job.tokens, job.held_tokens)
    account = BalanceAccount.objects.get(tenant=tenant)
    assert account.held == 0 and account.available == 10_000 - job.billed_tokens
    assert_ledger_consistent(tenant)


@pytest.mark.django_db
def test_worker_fails_uncharged_when_the_balance_cannot_cover_the_real_length(
    api_client, tenant, grant, lying, probe_says_one_second, monkeypatch
):
    from transcription.engines import get_engine

    grant(tenant, hold_amount(duration_s=1.0) + 5)
    job_id = _submit_short_probed(api_client, lying)
    engine = type(get_engine())
    calls = []
    real = engine.transcribe_regions

    def spy(self, *args, **kwargs):
        calls.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(engine, "transcribe_regions", spy)
    assert services.transcription_run(transcription_id=job_id) == "failed"
    job = Transcription.objects.get(pk=job_id)
    assert job.error_code == "insufficient_balance"
    assert "not charged" in job.error_message
    assert calls == []  # nothing past the hold was recognized
    assert not LedgerEntry.objects.filter(transcription=job, kind__in=["debit", "hold_extend"]).exists()
    account = BalanceAccount.objects.get(tenant=tenant)
    assert (account.available, account.held) == (hold_amount(duration_s=1.0) + 5, 0)
    assert_ledger_consistent(tenant)


@pytest.mark.django_db
def test_a_cache_hit_holds_what_the_cached_result_decoded(api_client, tenant, grant, lying, monkeypatch):
    """The same file again answers from the cache: its hold covers the stored result's real length."""
    grant(tenant, 10_000)
    first = api_client.post("/api/v1/transcriptions", {"file": _upload(lying[("mkv", "true")])}, format="multipart")
    assert services.transcription_run(transcription_id=first.json()["id"]) == "succeeded"
    import transcription.audio as audio

    real = audio.probe
    monkeypatch.setattr(audio, "probe", lambda path: dataclasses.replace(real(path), duration_s=1.0))
    again = api_client.post("/api/v1/transcriptions", {"file": _upload(lying[("mkv", "true")])}, format="multipart")
    body = again.json()
    assert body["status"] == "succeeded" and body["cache_hit"] is True, body
    assert body["usage"]["held_tokens"] >= hold_amount(duration_s=SECONDS - 0.1)
    assert_ledger_consistent(tenant)


def test_pipeline_admits_every_second_before_it_is_recognized(lying):
    """recognize_file calls `admit` with the decoded length before any window reaching past it is recognized."""
    engine = RecordingEngine()
    admitted: list[float] = []
    seen: list[tuple[float, float]] = []  # (window end on the timeline, admitted so far)

    original = engine.transcribe_regions

    def watch(audio, **kwargs):
        seen.append((kwargs["offset_s"] + audio.shape[0] / 16_000, max(admitted, default=0.0)))
        return original(audio, **kwargs)

    engine.transcribe_regions = watch
    for vad in (False, True):
        admitted.clear()
        seen.clear()
        recognize_file(
            lying[("mkv", "under")],
            engine=engine,
            options=TranscribeOptions(vad=vad),
            max_seconds=3600,
            chunk_seconds=5.0,
            admit=admitted.append,
        )
        assert admitted == sorted(admitted) and admitted[-1] == pytest.approx(SECONDS, abs=0.05)
        assert len(admitted) == 4
        assert all(end <= covered + 1e-6 for end, covered in seen), seen
