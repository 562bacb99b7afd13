"""Money reads."""

from __future__ import annotations

from django.db.models import QuerySet, Sum

from billing.models import BalanceAccount, LedgerEntry


def balance_get(*, tenant) -> BalanceAccount:
    account, _ = BalanceAccount.objects.get_or_create(tenant=tenant)
    return account


def ledger_list(*, tenant, kind: str | None = None) -> QuerySet[LedgerEntry]:
    qs = LedgerEntry.objects.filter(tenant=tenant).order_by("-id")
    if kind:
        qs = qs.filter(kind=kind)
    return qs


def ledger_sums(*, tenant) -> tuple[int, int]:
    """(Σ available_delta, Σ held_delta): must equal the stored balance."""
    agg = LedgerEntry.objects.filter(tenant=tenant).aggregate(a=Sum("available_delta"), h=Sum("held_delta"))
    return agg["a"] or 0, agg["h"] or 0
