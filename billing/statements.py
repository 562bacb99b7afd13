"""Monthly statements per tenant: opening balance, top-ups, jobs, adjustments, closing balance; HTML and PDF.

Balances here are totals (available + held): a hold only moves tokens between the two buckets, so the
total changes by top-ups, adjustments (grants, refunds, disputes) and job debits, and
closing = opening + top-ups + adjustments - job debits. Months are calendar months in UTC.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncMonth
from django.template.loader import render_to_string
from django.utils import timezone

from billing.models import LedgerEntry
from portal.errors import InvalidRequest

Kind = LedgerEntry.Kind
ADJUSTMENT_KINDS = (Kind.GRANT, Kind.ADJUSTMENT, Kind.REFUND, Kind.DISPUTE, Kind.DISPUTE_REVERSAL)
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])\Z")
# Statement months: any year that is not absurd (the ledger starts long after 2000).
MIN_YEAR, MAX_YEAR = 2000, 2999


@dataclass(frozen=True)
class JobLine:
    id: str
    finished_at: datetime
    filename: str
    duration_s: float
    billed_tokens: int


@dataclass(frozen=True)
class Statement:
    tenant: object
    period: str  # YYYY-MM
    start: datetime
    end: datetime
    opening_balance: int
    closing_balance: int
    closing_available: int
    closing_held: int
    topups: list[LedgerEntry]
    adjustments: list[LedgerEntry]
    jobs: list[JobLine]
    topup_tokens: int
    adjustment_tokens: int
    job_debit_tokens: int  # from the ledger: what the jobs of this month cost

    @property
    def job_count(self) -> int:
        return len(self.jobs)

    @property
    def audio_seconds(self) -> float:
        return sum(j.duration_s for j in self.jobs)

    @property
    def job_tokens(self) -> int:
        return sum(j.billed_tokens for j in self.jobs)


def month_parse(value: str) -> tuple[datetime, datetime]:
    """'2026-11' -> (2026-11-01T00:00Z, 2026-12-01T00:00Z); 400 for anything else."""
    match = _MONTH.match(value or "")
    if not match:
        raise InvalidRequest(f"Invalid month {value!r}; use YYYY-MM.")
    year, month = int(match.group(1)), int(match.group(2))
    if not MIN_YEAR <= year <= MAX_YEAR:
        # Year 0 does not exist and 9999-12 ends in year 10000: neither is a datetime.
        raise InvalidRequest(f"Invalid month {value!r}; the year must be from {MIN_YEAR} to {MAX_YEAR}.")
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def _total_before(*, tenant, moment: datetime) -> tuple[int, int]:
    agg = LedgerEntry.objects.filter(tenant=tenant, created_at__lt=moment).aggregate(
        a=Sum("available_delta"), h=Sum("held_delta")
    )
    return agg["a"] or 0, agg["h"] or 0


# What was transcribed in a period comes from the apps that transcribe (billing never imports them): the
# transcription and streaming apps register a selector here at start-up (their AppConfig.ready).
UsageSource = Callable[..., list[JobLine]]
_usage_sources: list[UsageSource] = []


def usage_source_register(source: UsageSource) -> None:
    """Register `source(*, tenant, start, end) -> list[JobLine]`: the finished, billed work in [start, end)."""
    if source not in _usage_sources:
        _usage_sources.append(source)


def statement_build(*, tenant, period: str) -> Statement:
    start, end = month_parse(period)
    if start > timezone.now():
        raise InvalidRequest(f"{period} has not started yet.")
    opening_a, opening_h = _total_before(tenant=tenant, moment=start)
    closing_a, closing_h = _total_before(tenant=tenant, moment=end)
    month_entries = LedgerEntry.objects.filter(tenant=tenant, created_at__gte=start, created_at__lt=end).select_related(
        "actor", "topup"
    )
    topups = list(month_entries.filter(kind=Kind.TOPUP))
    adjustments = list(month_entries.filter(kind__in=ADJUSTMENT_KINDS))
    debits = month_entries.filter(kind=Kind.DEBIT).aggregate(s=Sum("held_delta"))["s"] or 0
    jobs = sorted(
        (line for source in _usage_sources for line in source(tenant=tenant, start=start, end=end)),
        key=lambda line: line.finished_at,
    )
    return Statement(
        tenant=tenant,
        period=period,
        start=start,
        end=end,
        opening_balance=opening_a + opening_h,
        closing_balance=closing_a + closing_h,
        closing_available=closing_a,
        closing_held=closing_h,
        topups=topups,
        adjustments=adjustments,
        jobs=jobs,
        topup_tokens=sum(e.available_delta for e in topups),
        adjustment_tokens=sum(e.available_delta for e in adjustments),
        job_debit_tokens=-debits,
    )


def statement_periods(*, tenant) -> list[dict]:
    """Months with ledger activity, newest first: [{period, entries}]."""
    rows = (
        LedgerEntry.objects.filter(tenant=tenant)
        .annotate(month=TruncMonth("created_at", tzinfo=UTC))
        .values("month")
        .annotate(entries=Count("id"), topups=Count("id", filter=Q(kind=Kind.TOPUP)))
        .order_by("-month")
    )
    return [{"period": r["month"].strftime("%Y-%m"), "entries": r["entries"], "topups": r["topups"]} for r in rows]


def statement_html(*, statement: Statement) -> str:
    return render_to_string("billing/statement.html", {"s": statement, "generated_at": timezone.now()})


def statement_pdf(*, statement: Statement) -> bytes:
    """PDF of the same HTML (WeasyPrint, imported here: it needs Pango at run time, not at import of billing)."""
    from weasyprint import HTML

    return HTML(string=statement_html(statement=statement)).write_pdf()
