"""Monthly statements: opening + top-ups + adjustments - jobs = closing, from the ledger and the jobs."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import UTC, datetime
from unittest import mock

import pytest

from billing.selectors import ledger_sums
from billing.services import external_entry_write, hold_place, hold_settle, tokens_grant
from billing.statements import statement_build, statement_html, statement_pdf, statement_periods
from portal.errors import InvalidRequest
from tests.billing.conftest import assert_ledger_invariant
from transcription.models import Transcription


@contextmanager
def at(year: int, month: int, day: int):
    with mock.patch("django.utils.timezone.now", return_value=datetime(year, month, day, 12, tzinfo=UTC)):
        yield


def finished_job(tenant, *, when: datetime, duration_s: float, held: int, used: int) -> Transcription:
    job = Transcription.objects.create(tenant=tenant, sha256="a" * 64, held_tokens=held, filename="call.wav")
    hold_place(tenant_id=tenant.pk, reference=job.pk, tokens=held)
    hold_settle(tenant_id=job.tenant_id, reference=job.pk, held=job.held_tokens, tokens=used)
    Transcription.objects.filter(pk=job.pk).update(
        status="succeeded", finished_at=when, duration_s=duration_s, tokens=used, billed_tokens=used
    )
    return job


@pytest.fixture
def history(tenant, other_tenant):
    with at(2026, 10, 5):
        tokens_grant(tenant=tenant, tokens=1_000, memo="trial")
    with at(2026, 11, 2):
        external_entry_write(tenant=tenant, kind="topup", tokens=100_000, external_ref="cs_nov", memo="starter")
        tokens_grant(tenant=other_tenant, tokens=9_999, memo="someone else")
    with at(2026, 11, 10):
        nov_job = finished_job(tenant, when=datetime(2026, 11, 10, 12, tzinfo=UTC), duration_s=60.5, held=800, used=500)
    with at(2026, 11, 15):
        tokens_grant(tenant=tenant, tokens=-200, memo="duplicate upload credit reversed", kind="adjustment")
    with at(2026, 11, 30):
        # Still running at month end: its hold stays in the closing balance, as held.
        open_job = Transcription.objects.create(tenant=tenant, sha256="b" * 64, held_tokens=300)
        hold_place(tenant_id=tenant.pk, reference=open_job.pk, tokens=300)
    with at(2026, 12, 1):
        finished_job(tenant, when=datetime(2026, 12, 1, 12, tzinfo=UTC), duration_s=10, held=100, used=90)
    return nov_job


def test_november_statement_adds_up(tenant, history):
    with at(2026, 12, 20):
        s = statement_build(tenant=tenant, period="2026-11")

    assert s.opening_balance == 1_000
    assert s.topup_tokens == 100_000
    assert s.adjustment_tokens == -200
    assert [j.id for j in s.jobs] == [str(history.pk)]
    assert (s.job_count, s.audio_seconds, s.job_tokens, s.job_debit_tokens) == (1, 60.5, 500, 500)
    assert s.closing_balance == s.opening_balance + s.topup_tokens + s.adjustment_tokens - s.job_debit_tokens == 100_300
    assert s.closing_held == 300
    assert_ledger_invariant(tenant)


def test_months_chain_and_the_last_closing_is_the_balance(tenant, history):
    with at(2026, 12, 20):
        october, november, december = (
            statement_build(tenant=tenant, period=p) for p in ("2026-10", "2026-11", "2026-12")
        )

    assert october.opening_balance == 0 and october.closing_balance == 1_000
    assert november.opening_balance == october.closing_balance
    assert december.opening_balance == november.closing_balance
    assert december.closing_balance == sum(ledger_sums(tenant=tenant))
    assert [j.billed_tokens for j in december.jobs] == [90]


def test_statement_html_and_pdf_show_the_lines(tenant, history):
    with at(2026, 12, 20):
        s = statement_build(tenant=tenant, period="2026-11")
        html = statement_html(statement=s)
        pdf = statement_pdf(statement=s)

    assert "Statement 2026-11" in html
    assert str(history.pk) in html
    assert "100,300" in html and "cs_nov" in html and "duplicate upload credit reversed" in html
    assert "someone else" not in html
    assert pdf.startswith(b"%PDF")


def test_statement_periods_lists_active_months(tenant, history):
    assert [p["period"] for p in statement_periods(tenant=tenant)] == ["2026-12", "2026-11", "2026-10"]


@pytest.mark.parametrize("period", ["2026-00", "26-11", "2026-1", "november"])
def test_bad_period_is_invalid_request(tenant, period):
    with pytest.raises(InvalidRequest):
        statement_build(tenant=tenant, period=period)
