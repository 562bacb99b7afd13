"""A submit's row and hold as one PostgreSQL statement (billing.hold_place_with_row) against the transaction it
replaces (which SQLite keeps, and which `billing.services.SINGLE_STATEMENT = False` forces on PostgreSQL)."""

from __future__ import annotations

import os

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.forms.models import model_to_dict

from billing import services as billing_services
from billing.models import BalanceAccount, LedgerEntry
from billing.services import tokens_grant
from portal.errors import InsufficientBalance
from tests.audio_helpers_core import tone_wav
from tests.billing.conftest import assert_ledger_invariant, postgres_required
from tests.billing.test_concurrency import run_parallel
from tests.factories import TenantFactory
from transcription.models import Transcription
from transcription.services.submit import transcription_create

# What differs between two submits of the same request by design.
OWN = {"id", "tenant", "created_at", "enqueued_at", "audio"}
ENTRY = ("kind", "available_delta", "held_delta", "available_after", "held_after", "actor_label", "memo")


def _submit(tenant, *, key: str | None = None) -> Transcription:
    upload = SimpleUploadedFile("a.wav", tone_wav(1.5, freq=300.0), content_type="audio/wav")
    return transcription_create(tenant=tenant, uploaded_file=upload, options={"language": "zh"}, idempotency_key=key)


@pytest.mark.django_db(transaction=True)
def test_both_ways_store_the_same_row_and_hold(monkeypatch):
    postgres_required()
    rows, entries = [], []
    for single in (True, False):
        monkeypatch.setattr(billing_services, "SINGLE_STATEMENT", single)
        tenant = TenantFactory()
        tokens_grant(tenant=tenant, tokens=1_000, memo="start")
        job = _submit(tenant, key="same-key")
        stored = Transcription.objects.get(pk=job.pk)
        assert model_to_dict(job) == model_to_dict(stored)  # what the caller got is what was stored
        assert (stored.created_at, stored.enqueued_at) == (job.created_at, job.enqueued_at)
        assert not job._state.adding and os.path.exists(stored.audio.path)
        rows.append({k: v for k, v in model_to_dict(stored).items() if k not in OWN})
        entries.append(
            [[getattr(e, f) for f in ENTRY] for e in LedgerEntry.objects.filter(tenant=tenant).order_by("id")]
        )
        assert_ledger_invariant(tenant)
        # The same key again is the same job (the replay), whichever way the first was stored.
        assert _submit(tenant, key="same-key").pk == job.pk
    assert rows[0] == rows[1]
    assert entries[0] == entries[1] and [e[0] for e in entries[0]] == ["grant", "hold"]


@pytest.mark.django_db(transaction=True)
def test_concurrent_submits_against_a_short_balance_never_overdraw(monkeypatch):
    """16 submits race for what 5 of them hold, and a bit: 5 are stored with their hold, the others get the 402
    with the balance they were refused against, and leave no row or hold behind."""
    postgres_required()
    monkeypatch.setattr(billing_services, "SINGLE_STATEMENT", True)
    tenant = TenantFactory()
    need = _submit_cost()
    granted = 5 * need + need // 2
    tokens_grant(tenant=tenant, tokens=granted, memo="race")
    results = run_parallel(16, lambda i: _submit(tenant))
    stored = [r for r in results if isinstance(r, Transcription)]
    refused = [r for r in results if isinstance(r, InsufficientBalance)]
    assert len(stored) == 5 and len(refused) == 16 - len(stored), [type(r) for r in results]
    assert all(r.extra["available_tokens"] < need for r in refused)
    assert Transcription.objects.filter(tenant=tenant).count() == len(stored)
    holds = LedgerEntry.objects.filter(tenant=tenant, kind="hold")
    assert sorted(h.transcription_id for h in holds) == sorted(j.pk for j in stored)
    account = BalanceAccount.objects.get(tenant=tenant)
    assert (account.available, account.held) == (granted - 5 * need, 5 * need)
    assert all(os.path.exists(j.audio.path) for j in stored)
    assert_ledger_invariant(tenant)


def _submit_cost() -> int:
    from billing.services import hold_amount
    from transcription.engines import engine_model_name

    return hold_amount(duration_s=1.5, model=engine_model_name())


@pytest.mark.django_db(transaction=True)
def test_a_cached_result_stops_the_one_statement_write_and_the_submit_answers_from_it(monkeypatch):
    """The one statement also checks that there is no cached result: with one, it writes nothing (no row, no money),
    and the submit looks the result up and answers from it, billed once, as before."""
    postgres_required()
    from transcription import services
    from transcription.services import submit

    tenant = TenantFactory()
    tokens_grant(tenant=tenant, tokens=1_000, memo="start")
    first = _submit(tenant)
    assert services.transcription_run(transcription_id=first.pk) == "succeeded"
    placed: list = []
    original = submit.hold_place_with_row

    def recording(**kwargs):
        placed.append(original(**kwargs))
        return placed[-1]

    monkeypatch.setattr(submit, "hold_place_with_row", recording)
    balance = BalanceAccount.objects.get(tenant=tenant).available
    again = _submit(tenant)
    assert placed == [None]  # the one statement wrote nothing
    again.refresh_from_db()
    assert again.status == Transcription.Status.SUCCEEDED and again.cache_hit and again.cache_source_id == first.pk
    assert BalanceAccount.objects.get(tenant=tenant).available == balance - again.billed_tokens
    kinds = list(LedgerEntry.objects.filter(transcription=again).order_by("id").values_list("kind", flat=True))
    assert kinds == (["hold", "release", "debit"] if again.billed_tokens else ["hold", "release"])  # billed once
    assert Transcription.objects.filter(tenant=tenant).count() == 2
    assert_ledger_invariant(tenant)
    # Different options: no cached result, the one statement stores it.
    upload = SimpleUploadedFile("a.wav", tone_wav(1.5, freq=300.0), content_type="audio/wav")
    other = transcription_create(tenant=tenant, uploaded_file=upload, options={"language": "en"})
    assert placed[-1] is not None and other.status == Transcription.Status.QUEUED
