"""A finalize's row write and settle as one PostgreSQL statement (transcription.services.finalize) against the
transaction it replaces, and its guard: a canceled, re-claimed or re-held row is left to that transaction."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.forms.models import model_to_dict
from django.test.utils import CaptureQueriesContext

from billing import services as billing_services
from billing.models import BalanceAccount, LedgerEntry
from billing.services import tokens_grant
from tests.audio_helpers_core import tone_wav
from tests.billing.conftest import assert_ledger_invariant, postgres_required
from tests.factories import TenantFactory
from transcription import services
from transcription.models import Transcription
from transcription.services.lifecycle import claim_with_row, transcription_cancel
from transcription.services.submit import transcription_create

# What differs between two runs of the same request by design.
OWN = {"id", "tenant", "created_at", "enqueued_at", "started_at", "finished_at", "audio", "decode_ms", "vad_ms",
       "asr_ms", "lease_expires_at"}  # fmt: skip
ENTRY = ("kind", "available_delta", "held_delta", "available_after", "held_after", "actor_label", "memo")
RESULT = {"text": "你好 世界", "segments": [{"start": 0.0, "end": 1.0, "text": "你好 世界"}], "language": "zh",
          "duration_s": 1.5, "model": "m"}  # fmt: skip


def _job(tenant) -> Transcription:
    upload = SimpleUploadedFile("a.wav", tone_wav(1.5, freq=300.0), content_type="audio/wav")
    return transcription_create(tenant=tenant, uploaded_file=upload, options={"language": "zh"})


def _tenant(tokens: int = 1_000):
    tenant = TenantFactory()
    tokens_grant(tenant=tenant, tokens=tokens, memo="start")
    return tenant


@pytest.mark.django_db(transaction=True)
def test_both_ways_store_the_same_result_and_ledger(monkeypatch):
    postgres_required()
    rows, entries = [], []
    for single in (True, False):
        monkeypatch.setattr(billing_services, "SINGLE_STATEMENT", single)
        tenant = _tenant()
        claim, row = claim_with_row(transcription_id=_job(tenant).pk)
        with CaptureQueriesContext(connection) as captured:
            assert services.transcription_finalize(claim=claim, row=row, **RESULT)
        # One statement; or BEGIN, the row's lock, its write, the ORM money write (lock, debit, release, balance),
        # COMMIT.
        assert len(captured.captured_queries) == (1 if single else 8)
        stored = Transcription.objects.get(pk=claim.transcription_id)
        assert model_to_dict(row) == model_to_dict(stored)  # what the worker holds is what was stored
        rows.append({k: v for k, v in model_to_dict(stored).items() if k not in OWN})
        entries.append(
            [[getattr(e, f) for f in ENTRY] for e in LedgerEntry.objects.filter(tenant=tenant).order_by("id")]
        )
        assert_ledger_invariant(tenant)
        # A second finalize of the same attempt (a redelivered task) changes nothing.
        assert not services.transcription_finalize(claim=claim, row=row, **RESULT)
    assert rows[0] == rows[1] and rows[0]["status"] == "succeeded" and rows[0]["billed_tokens"] > 0
    assert entries[0] == entries[1] and [e[0] for e in entries[0]] == ["grant", "hold", "debit", "release"]


@pytest.mark.django_db(transaction=True)
def test_a_hold_extended_since_the_claim_is_settled_from_the_row(monkeypatch):
    """The worker's row says the claimed hold; the row in the database holds more (the decoded audio was longer):
    the one statement matches nothing and the transaction settles the hold the row has now."""
    postgres_required()
    tenant = _tenant()
    claim, row = claim_with_row(transcription_id=_job(tenant).pk)
    services.transcription_hold_cover(claim=claim, duration_s=30.0)
    held_now = Transcription.objects.get(pk=claim.transcription_id).held_tokens
    assert held_now > row.held_tokens
    assert services.transcription_finalize(claim=claim, row=row, **{**RESULT, "text": "字" * 500})
    stored = Transcription.objects.get(pk=claim.transcription_id)
    assert (stored.held_tokens, stored.billed_tokens) == (held_now, min(500, held_now))
    assert LedgerEntry.objects.filter(transcription_id=stored.pk, kind="debit").get().held_delta == -min(500, held_now)
    assert_ledger_invariant(tenant)


@pytest.mark.django_db(transaction=True)
def test_a_transcription_canceled_after_its_claim_is_not_billed(monkeypatch):
    postgres_required()
    tenant = _tenant()
    claim, row = claim_with_row(transcription_id=_job(tenant).pk)
    transcription_cancel(transcription=Transcription.objects.get(pk=claim.transcription_id))
    assert not services.transcription_finalize(claim=claim, row=row, **RESULT)
    stored = Transcription.objects.get(pk=claim.transcription_id)
    assert stored.status == "canceled" and stored.text == "" and stored.billed_tokens in (0, None)
    assert not LedgerEntry.objects.filter(transcription_id=stored.pk, kind="debit").exists()
    account = BalanceAccount.objects.get(tenant=tenant)
    assert (account.available, account.held) == (1_000, 0)
    assert_ledger_invariant(tenant)
