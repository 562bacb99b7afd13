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


def token_packs_list(*, currency: str | None = None):
    """Active packs with their prices (`pack.price_list`, by currency; optionally only packs sold in `currency`)."""
    from django.db.models import Prefetch

    from billing.models import TokenPack, TokenPackPrice

    by_currency = Prefetch("prices", queryset=TokenPackPrice.objects.order_by("currency"), to_attr="price_list")
    qs = TokenPack.objects.filter(active=True).prefetch_related("prices", by_currency)
    if currency:
        qs = qs.filter(prices__currency=currency.lower())
    return qs


def topup_list(*, tenant):
    from billing.models import TopUp

    return TopUp.objects.filter(tenant=tenant).select_related("pack").order_by("-created_at")


def stripe_invoices_list(*, tenant) -> tuple[list[dict], bool]:
    """Stripe invoices of the tenant's customers, newest first; (invoices, complete). Falls back to stored URLs."""
    from billing import stripe_api
    from billing.models import TopUp

    paid = TopUp.objects.filter(tenant=tenant, status=TopUp.Status.PAID)
    invoices: dict[str, dict] = {}
    complete = True
    customer_ids = sorted(set(paid.exclude(stripe_customer_id="").values_list("stripe_customer_id", flat=True)))
    for customer_id in customer_ids:
        try:
            found = stripe_api.invoices_for_customer(customer_id=customer_id)
        except stripe_api.PaymentProviderError:
            complete = False
            continue
        for inv in found:
            invoices[inv["id"]] = {
                "id": inv["id"],
                "number": inv.get("number") or "",
                "status": inv.get("status") or "",
                "currency": inv.get("currency") or "",
                "amount_paid": inv.get("amount_paid") or 0,
                "created": inv.get("created"),
                "hosted_invoice_url": inv.get("hosted_invoice_url") or "",
                "invoice_pdf": inv.get("invoice_pdf") or "",
            }
    for topup in paid.exclude(stripe_invoice_id=""):
        invoices.setdefault(
            topup.stripe_invoice_id,
            {
                "id": topup.stripe_invoice_id,
                "number": "",
                "status": "paid",
                "currency": topup.currency,
                "amount_paid": topup.amount,
                "created": int(topup.paid_at.timestamp()) if topup.paid_at else None,
                "hosted_invoice_url": topup.hosted_invoice_url,
                "invoice_pdf": topup.invoice_pdf,
            },
        )
    return sorted(invoices.values(), key=lambda i: i["created"] or 0, reverse=True), complete


def topups_reconciliation(*, days: int) -> dict:
    """Paid Checkout Sessions at Stripe vs top-up credits in the ledger over the last `days` days: the differences."""
    from datetime import timedelta

    from django.utils import timezone

    from billing import stripe_api

    since = timezone.now() - timedelta(days=days)
    sessions = {
        s["id"]: s
        for s in stripe_api.checkout_sessions_complete_since(created_gte=int(since.timestamp()))
        if s.get("payment_status") == "paid" and (s.get("metadata") or {}).get("tenant_id")
    }
    credited = {
        e.external_ref: e
        for e in LedgerEntry.objects.filter(kind=LedgerEntry.Kind.TOPUP, created_at__gte=since).select_related("tenant")
    }
    if sessions:
        # A session paid in the window may have been credited before it (clock skew): look those up too.
        older = LedgerEntry.objects.filter(kind=LedgerEntry.Kind.TOPUP, external_ref__in=list(sessions)).select_related(
            "tenant"
        )
        credited.update({e.external_ref: e for e in older})
    missing = [
        {
            "session_id": sid,
            "tenant_id": s["metadata"].get("tenant_id"),
            "tenant_slug": s["metadata"].get("tenant_slug", ""),
            "tokens": s["metadata"].get("tokens"),
            "amount_total": s.get("amount_total"),
            "currency": s.get("currency"),
        }
        for sid, s in sessions.items()
        if sid not in credited
    ]
    unknown = [e for ref, e in credited.items() if ref not in sessions and e.created_at >= since]
    return {
        "days": days,
        "matched": len(set(sessions) & set(credited)),
        "missing": missing,
        "not_paid_at_stripe": unknown,
    }
