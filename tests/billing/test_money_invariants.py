"""A hypothesis state machine over grant / submit / succeed / fail / cancel / retry: after every
step the money invariants of PRODUCT.md hold."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db.models import Sum
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

from billing.models import BalanceAccount, LedgerEntry
from billing.selectors import ledger_sums
from billing.services import tokens_grant
from billing.verify import ledger_verify
from portal.errors import InsufficientBalance
from tests.audio_helpers_core import tone_wav
from tests.factories import TenantFactory
from transcription import services
from transcription.models import Transcription

AUDIO = {seconds: tone_wav(seconds, freq=300 + 100 * seconds) for seconds in (0.5, 1.0, 3.0)}
_slugs = itertools.count()


class MoneyMachine(RuleBasedStateMachine):
    jobs = Bundle("jobs")

    def __init__(self):
        super().__init__()
        self.tenant = TenantFactory(slug=f"sm-{next(_slugs)}")
        self.claims: dict = {}

    @rule(tokens=st.integers(min_value=1, max_value=60))
    def grant(self, tokens):
        tokens_grant(tenant=self.tenant, tokens=tokens, memo="sm")

    @rule(target=jobs, seconds=st.sampled_from(sorted(AUDIO)), salt=st.integers(0, 3))
    def submit(self, seconds, salt):
        audio = SimpleUploadedFile("a.wav", AUDIO[seconds])
        before = BalanceAccount.objects.get(tenant=self.tenant).available
        try:
            # Different itn values make different cache keys; same ones may hit the cache.
            job = services.transcription_create(tenant=self.tenant, uploaded_file=audio, options={"itn": salt % 2 == 0})
        except InsufficientBalance as exc:
            assert exc.extra["available_tokens"] == before < exc.extra["needed_tokens"]
            return None
        return job.pk

    def _claim(self, job_id):
        claim = services.transcription_claim(transcription_id=job_id)
        if claim is not None:
            self.claims[job_id] = claim
        return self.claims.get(job_id)

    @rule(job_id=consumes(jobs), tokens=st.integers(min_value=0, max_value=40))
    def succeed(self, job_id, tokens):
        if job_id is None:
            return
        claim = self._claim(job_id)
        if claim is None:
            return
        text = " ".join(f"w{i}" for i in range(tokens))
        services.transcription_finalize(claim=claim, text=text, segments=[], language="en", duration_s=1.0)
        # A second finalize of the same attempt (re-delivered task) must change nothing.
        assert (
            services.transcription_finalize(claim=claim, text=text, segments=[], language="en", duration_s=1.0) is False
        )

    @rule(job_id=consumes(jobs))
    def fail(self, job_id):
        if job_id is not None:
            services.transcription_fail(transcription_id=job_id, code="test", message="failed in test")

    @rule(job_id=consumes(jobs))
    def cancel(self, job_id):
        if job_id is None:
            return
        job = Transcription.objects.get(pk=job_id)
        if not job.is_final:
            services.transcription_cancel(transcription=job)

    @rule(job_id=jobs)
    def retry(self, job_id):
        """The worker died: the lease expires, the sweeper re-queues (or fails past the cap)."""
        if job_id is None or self._claim(job_id) is None:
            return
        Transcription.objects.filter(pk=job_id, status="running").update(
            lease_expires_at=timezone.now() - timedelta(seconds=1)
        )
        services.transcription_sweep()
        self.claims.pop(job_id, None)

    @invariant()
    def balance_equals_ledger(self):
        account = BalanceAccount.objects.get(tenant=self.tenant)
        assert (account.available, account.held) == ledger_sums(tenant=self.tenant)
        assert account.available >= 0

    @invariant()
    def held_equals_open_holds(self):
        account = BalanceAccount.objects.get(tenant=self.tenant)
        open_holds = (
            Transcription.objects.filter(tenant=self.tenant, status__in=["queued", "running"]).aggregate(
                s=Sum("held_tokens")
            )["s"]
            or 0
        )
        assert account.held == open_holds

    @invariant()
    def ledger_verify_finds_no_drift(self):
        assert ledger_verify().problems == []

    @invariant()
    def per_job_money(self):
        for job in Transcription.objects.filter(tenant=self.tenant):
            entries = LedgerEntry.objects.filter(transcription=job)
            debits = [e for e in entries if e.kind == "debit"]
            assert len(debits) <= 1
            debit = -debits[0].held_delta if debits else 0
            assert debit <= job.held_tokens
            if job.status in ("failed", "canceled"):
                assert debit == 0
                assert sum(e.available_delta for e in entries) == 0  # costs nothing
            if job.status == "succeeded":
                assert debit == (job.billed_tokens or 0) == min(job.tokens, job.held_tokens)
                assert -sum(e.available_delta for e in entries) == debit


@pytest.mark.django_db
def test_money_state_machine():
    MoneyMachine.TestCase.settings = settings(
        max_examples=25, stateful_step_count=20, deadline=None, suppress_health_check=list(HealthCheck)
    )
    MoneyMachine.TestCase().runTest()
