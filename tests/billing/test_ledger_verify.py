"""`manage.py ledger_verify` (issue 12.9): clean books pass; each kind of drift is named and exits non-zero."""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import F

from billing.models import BalanceAccount, LedgerEntry, TopUp
from tests.audio_helpers_core import tone_wav
from tests.conftest import ROOT, database_url
from transcription import services
from transcription.models import Transcription


def _job(tenant, seconds: float = 1.0) -> Transcription:
    return services.transcription_create(
        tenant=tenant,
        uploaded_file=SimpleUploadedFile("a.wav", tone_wav(seconds)),
        options={"hotwords": [str(seconds)]},
    )


def _books(tenant, grant):
    """A granted tenant with one job of each kind: succeeded (debited), canceled, failed, queued, empty result."""
    grant(tenant, 10_000)
    done = _job(tenant, 1.0)
    claim = services.transcription_claim(transcription_id=done.pk)
    assert services.transcription_finalize(claim=claim, text="你好 world", segments=[], language="zh", duration_s=1.0)
    services.transcription_cancel(transcription=_job(tenant, 1.5))
    failed = _job(tenant, 2.0)
    services.transcription_fail(transcription_id=failed.pk, code="unsupported_audio", message="x")
    empty = _job(tenant, 2.5)
    claim = services.transcription_claim(transcription_id=empty.pk)
    assert services.transcription_finalize(claim=claim, text="", segments=[], language="", duration_s=2.5)
    _job(tenant, 3.0)  # still queued: its hold is open
    return done


def _verify() -> str:
    from io import StringIO

    out = StringIO()
    call_command("ledger_verify", stdout=out, stderr=out)
    return out.getvalue()


@pytest.mark.django_db
def test_balanced_books_pass(tenant, other_tenant, grant):
    _books(tenant, grant)
    grant(other_tenant, 5)
    assert "Ledger OK: 2 accounts" in _verify()


@pytest.mark.django_db
def test_a_balance_that_differs_from_its_ledger_is_drift(tenant, grant):
    _books(tenant, grant)
    BalanceAccount.objects.filter(tenant=tenant).update(available=F("available") + 7)
    with pytest.raises(CommandError, match="Ledger drift: 2 problem"):
        _verify()
    from billing.verify import balances_drift

    assert any("ledger sums" in p for p in balances_drift()) and any("last ledger entry" in p for p in balances_drift())


@pytest.mark.django_db
def test_a_job_row_that_disagrees_with_its_debit_is_drift(tenant, grant):
    done = _books(tenant, grant)
    Transcription.objects.filter(pk=done.pk).update(billed_tokens=F("billed_tokens") + 1)
    with pytest.raises(CommandError, match="1 problem"):
        _verify()
    from transcription.verify import transcription_ledger_drift

    (problem,) = transcription_ledger_drift()
    assert str(done.pk) in problem and "1 debit(s) of 3 tokens; expected 0 held, 1 debit(s) of 4" in problem


@pytest.mark.django_db
def test_an_open_job_whose_hold_was_released_is_drift(tenant, grant):
    _books(tenant, grant)
    Transcription.objects.filter(status="failed").update(status="succeeded", billed_tokens=0)  # fine: 0 billed
    Transcription.objects.filter(status="canceled").update(status="running")  # its hold was released
    from transcription.verify import transcription_ledger_drift

    (problem,) = transcription_ledger_drift()
    assert "(running" in problem and "0 still held" in problem


@pytest.mark.django_db
def test_a_paid_top_up_without_its_credit_is_drift(tenant, grant):
    grant(tenant, 1)
    TopUp.objects.create(tenant=tenant, tokens=100, currency="usd", amount=500, status="paid", stripe_session_id="cs_1")
    from billing.verify import external_entries_drift

    (problem,) = external_entries_drift()
    assert problem.endswith("(cs_1): paid but no ledger credit"), problem
    with pytest.raises(CommandError):
        _verify()


@pytest.mark.django_db(transaction=True)
def test_the_command_exits_non_zero_on_drift(tenant, grant):
    """As an operator runs it after a restore: `manage.py ledger_verify` exit status 0, then 1 on drift."""
    _books(tenant, grant)
    env = {"DJANGO_SETTINGS_MODULE": "portal.settings.test", "DATABASE_URL": database_url(), "PATH": "/usr/bin:/bin"}

    def run() -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", "ledger_verify"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    ok = run()
    assert ok.returncode == 0 and "Ledger OK" in ok.stdout, ok.stderr
    LedgerEntry.objects.create(
        tenant=tenant,
        kind="grant",
        available_delta=5,
        available_after=0,
        held_after=0,
        memo="written around the service",
    )
    bad = run()
    assert bad.returncode == 1 and "Ledger drift" in bad.stderr and f"tenant {tenant.pk}: balance" in bad.stderr
