"""Money reads that look for drift: the checks behind `manage.py ledger_verify` (after a restore, in CI, any time).

Each check returns problems as sentences; none means the books balance. The database's constraints already
refuse most of these; this re-derives them from the rows, so a restore, a hand-run SQL statement or a dropped
constraint cannot hide drift. Apps above billing add checks of their own rows (`drift_check_register`: the
transcription app compares its rows with their ledger entries).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from django.db.models import Count, OuterRef, Subquery, Sum

from billing.models import BalanceAccount, LedgerEntry, TopUp

Kind = LedgerEntry.Kind
DriftCheck = Callable[[], list[str]]
_checks: dict[str, DriftCheck] = {}


def drift_check_register(name: str, check: DriftCheck) -> None:
    """Add `check() -> [problem, ...]` to what ledger_verify runs (once per name)."""
    _checks[name] = check


@dataclass
class LedgerReport:
    accounts: int = 0
    entries: int = 0
    problems: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)


def balances_drift() -> list[str]:
    """Each stored balance equals its ledger's sums, and the last entry's running totals equal it too."""
    sums = {
        row["tenant_id"]: (row["a"] or 0, row["h"] or 0)
        for row in LedgerEntry.objects.values("tenant_id").annotate(a=Sum("available_delta"), h=Sum("held_delta"))
    }
    last = LedgerEntry.objects.filter(tenant_id=OuterRef("tenant_id")).order_by("-id")
    accounts = BalanceAccount.objects.annotate(
        last_available=Subquery(last.values("available_after")[:1]), last_held=Subquery(last.values("held_after")[:1])
    ).values_list("tenant_id", "available", "held", "last_available", "last_held")
    problems = []
    seen = set()
    for tenant_id, available, held, last_available, last_held in accounts:
        seen.add(tenant_id)
        summed = sums.get(tenant_id, (0, 0))
        if (available, held) != summed:
            problems.append(
                f"tenant {tenant_id}: balance {available} available / {held} held, ledger sums {summed[0]} / {summed[1]}"
            )
        if last_available is not None and (last_available, last_held) != (available, held):
            problems.append(
                f"tenant {tenant_id}: last ledger entry says {last_available} / {last_held} after it, "
                f"balance is {available} / {held}"
            )
        if held < 0:  # available may go negative (a refund after spending), held never
            problems.append(f"tenant {tenant_id}: negative hold {held}")
    for tenant_id in sorted(set(sums) - seen):
        problems.append(f"tenant {tenant_id}: ledger entries but no balance account")
    return problems


def transcription_entries_drift() -> list[str]:
    """At most one hold, one release and one debit per transcription, and per stream session (whose minute
    extensions are hold_extend entries)."""
    problems = []
    for ref, name in (("transcription_id", "transcription"), ("stream_session_id", "stream session")):
        repeated = (
            LedgerEntry.objects.filter(kind__in=[Kind.HOLD, Kind.RELEASE, Kind.DEBIT], **{f"{ref}__isnull": False})
            .values(ref, "kind")
            .annotate(n=Count("id"))
            .filter(n__gt=1)
            .order_by(ref, "kind")
        )
        problems += [f"{name} {r[ref]}: {r['n']} {r['kind']} entries (at most 1)" for r in repeated]
    return problems


def external_entries_drift() -> list[str]:
    """One credit per Stripe session (and one entry per refund/dispute); each paid top-up credited its tokens."""
    repeated = (
        LedgerEntry.objects.filter(kind__in=LedgerEntry.EXTERNAL_KINDS)
        .values("kind", "external_ref")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .order_by("kind", "external_ref")
    )
    problems = [f"{r['kind']} {r['external_ref']}: {r['n']} ledger entries (at most 1)" for r in repeated]
    paid = TopUp.objects.filter(status=TopUp.Status.PAID).select_related("ledger_entry")
    for topup in paid.iterator(chunk_size=1000):
        entry = topup.ledger_entry
        if entry is None:
            problems.append(f"top-up {topup.pk} ({topup.stripe_session_id}): paid but no ledger credit")
        elif (entry.kind, entry.available_delta, entry.tenant_id, entry.external_ref) != (
            Kind.TOPUP, topup.tokens, topup.tenant_id, topup.stripe_session_id
        ):  # fmt: skip
            problems.append(
                f"top-up {topup.pk} ({topup.stripe_session_id}): credit entry #{entry.pk} is {entry.kind} "
                f"{entry.available_delta:+} for tenant {entry.tenant_id} ({entry.external_ref}), expected topup "
                f"+{topup.tokens} for tenant {topup.tenant_id}"
            )
    return problems


def ledger_verify(*, registered: bool = True) -> LedgerReport:
    """Run every check (billing's own, then the registered ones unless `registered` is False); the report lists
    what drifted (nothing when the books balance)."""
    report = LedgerReport(accounts=BalanceAccount.objects.count(), entries=LedgerEntry.objects.count())
    named: list[tuple[str, DriftCheck]] = [
        ("balances", balances_drift),
        ("transcription entries", transcription_entries_drift),
        ("stripe credits", external_entries_drift),
        *(_checks.items() if registered else ()),
    ]
    for name, check in named:
        report.checks.append(name)
        report.problems.extend(check())
    return report
