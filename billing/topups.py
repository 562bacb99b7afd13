"""Top-ups through Stripe Checkout: create the session, credit a paid session once, reverse refunds and disputes.

Every credit or reversal goes through `external_entry_write`, whose unique (kind, external_ref) makes it
happen at most once whichever path (webhook, retry, reconciliation) gets there first. Lock order: the
top-up row, then the account (inside `external_entry_write`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from billing import stripe_api
from billing.models import Currency, LedgerEntry, TokenPack, TokenPackPrice, TopUp
from billing.services import external_entry_write
from portal.errors import InvalidRequest
from tenants.models import Tenant

logger = logging.getLogger(__name__)

Kind = LedgerEntry.Kind
# Refunds that took (or are taking) money back; failed / canceled ones did not.
REFUND_COUNTED_STATUSES = ("succeeded", "pending", "requires_action")


def _id(value: Any) -> str:
    """A Stripe reference that may arrive as an id string or an expanded object."""
    if isinstance(value, dict):
        return value.get("id") or ""
    return value or ""


# --- Checkout ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckoutStarted:
    topup: TopUp
    session_id: str
    url: str


def checkout_session_create(*, tenant, pack_code: str, currency: str | None = None, user=None) -> CheckoutStarted:
    """Open a Stripe Checkout Session for one pack and record it as a pending top-up."""
    currency = (currency or Currency.USD).lower()
    if currency not in Currency.values:
        raise InvalidRequest(f"Unsupported currency {currency!r}; use one of {', '.join(Currency.values)}.")
    pack = TokenPack.objects.filter(code=pack_code, active=True).first()
    if pack is None:
        codes = ", ".join(TokenPack.objects.filter(active=True).values_list("code", flat=True))
        raise InvalidRequest(f"Unknown token pack {pack_code!r}; available packs: {codes}.")
    price = TokenPackPrice.objects.filter(pack=pack, currency=currency).first()
    if price is None:
        raise InvalidRequest(f"The {pack.code} pack is not sold in {currency.upper()}.")

    topup = TopUp.objects.create(
        tenant=tenant, pack=pack, tokens=pack.tokens, currency=currency, amount=price.unit_amount, created_by=user
    )
    metadata = {
        "tenant_id": str(tenant.pk),
        "tenant_slug": tenant.slug,
        "pack": pack.code,
        "tokens": str(pack.tokens),
        "topup_id": str(topup.pk),
    }
    customer_id = (
        TopUp.objects.filter(tenant=tenant)
        .exclude(stripe_customer_id="")
        .values_list("stripe_customer_id", flat=True)
        .first()
    )
    site = settings.SITE_URL.rstrip("/")
    params: dict[str, Any] = {
        "mode": "payment",
        # No payment_method_types: Checkout offers what the account enables for the currency
        # (cards; Alipay and WeChat Pay for CNY).
        "line_items": [
            {
                "quantity": 1,
                "price_data": {
                    "currency": currency,
                    "unit_amount": price.unit_amount,
                    "product_data": {
                        "name": f"Tingxie {pack.name}: {pack.tokens:,} tokens",
                        "metadata": {"pack": pack.code},
                    },
                },
            }
        ],
        "client_reference_id": str(tenant.pk),
        "metadata": metadata,
        "payment_intent_data": {"metadata": metadata},
        "invoice_creation": {"enabled": True, "invoice_data": {"metadata": metadata}},
        "success_url": f"{site}/app/billing/?checkout=success&session_id={{CHECKOUT_SESSION_ID}}",
        "cancel_url": f"{site}/app/billing/?checkout=canceled",
    }
    if customer_id:
        params["customer"] = customer_id
    else:
        params["customer_creation"] = "always"
    if user is not None and getattr(user, "email", "") and not customer_id:
        params["customer_email"] = user.email

    try:
        session = stripe_api.checkout_session_create(params=params, idempotency_key=f"tingxie-topup-{topup.pk}")
    except stripe_api.PaymentProviderError as exc:
        topup.status = TopUp.Status.FAILED
        topup.failure_message = exc.message
        topup.save(update_fields=["status", "failure_message"])
        raise
    topup.stripe_session_id = session["id"]
    topup.save(update_fields=["stripe_session_id"])
    return CheckoutStarted(topup=topup, session_id=session["id"], url=session.get("url") or "")


# --- Fulfilment --------------------------------------------------------------------------


def _topup_for_session(session: dict[str, Any]) -> TopUp | None:
    """The locked top-up of a session; found by session id, our metadata, or created from the metadata."""
    session_id = session["id"]
    topup = TopUp.objects.select_for_update().filter(stripe_session_id=session_id).first()
    if topup is not None:
        return topup
    metadata = session.get("metadata") or {}
    tenant_id = metadata.get("tenant_id") or session.get("client_reference_id")
    if not tenant_id:
        return None
    if metadata.get("topup_id"):
        # Our session whose id was never saved (e.g. the process died right after Stripe answered).
        topup = (
            TopUp.objects.select_for_update()
            .filter(pk=metadata["topup_id"], tenant_id=tenant_id, stripe_session_id__isnull=True)
            .first()
        )
        if topup is not None:
            topup.stripe_session_id = session_id
            topup.save(update_fields=["stripe_session_id"])
            return topup
    try:
        tokens = int(metadata["tokens"])
        tenant = Tenant.objects.get(pk=int(tenant_id))
    except (KeyError, TypeError, ValueError, Tenant.DoesNotExist):
        logger.error(
            "Checkout session %s has no usable tenant / token count in its metadata; not credited.", session_id
        )
        return None
    try:
        with transaction.atomic():
            TopUp.objects.create(
                tenant=tenant,
                pack=TokenPack.objects.filter(code=metadata.get("pack", "")).first(),
                tokens=tokens,
                currency=(session.get("currency") or Currency.USD).lower(),
                amount=session.get("amount_total") or 0,
                stripe_session_id=session_id,
            )
    except IntegrityError:
        pass  # a concurrent delivery created it first
    return TopUp.objects.select_for_update().get(stripe_session_id=session_id)


@transaction.atomic
def topup_fulfil(*, session: dict[str, Any]) -> LedgerEntry | None:
    """Credit a paid Checkout Session once. Returns the new entry, or None if unpaid / not ours / already credited."""
    if session.get("payment_status") != "paid":
        return None
    topup = _topup_for_session(session)
    if topup is None:
        logger.warning("Paid checkout session %s is not a Tingxie top-up; ignored.", session.get("id"))
        return None
    pack_label = topup.pack.code if topup.pack_id else "tokens"
    entry = external_entry_write(
        tenant=topup.tenant,
        kind=Kind.TOPUP,
        tokens=topup.tokens,
        external_ref=topup.stripe_session_id,
        memo=f"Stripe Checkout {pack_label}: {topup.amount / 100:.2f} {topup.currency.upper()}",
    )
    if entry is None and topup.ledger_entry_id is None:
        entry_existing = LedgerEntry.objects.filter(kind=Kind.TOPUP, external_ref=topup.stripe_session_id).first()
        topup.ledger_entry = entry_existing
    elif entry is not None:
        topup.ledger_entry = entry
    topup.status = TopUp.Status.PAID
    topup.paid_at = topup.paid_at or timezone.now()
    topup.failure_message = ""
    topup.stripe_payment_intent_id = _id(session.get("payment_intent")) or topup.stripe_payment_intent_id
    topup.stripe_customer_id = _id(session.get("customer")) or topup.stripe_customer_id
    topup.stripe_invoice_id = _id(session.get("invoice")) or topup.stripe_invoice_id
    invoice = session.get("invoice")
    if isinstance(invoice, dict):
        topup.hosted_invoice_url = invoice.get("hosted_invoice_url") or topup.hosted_invoice_url
        topup.invoice_pdf = invoice.get("invoice_pdf") or topup.invoice_pdf
    topup.save(
        update_fields=[
            "ledger_entry",
            "status",
            "paid_at",
            "failure_message",
            "stripe_payment_intent_id",
            "stripe_customer_id",
            "stripe_invoice_id",
            "hosted_invoice_url",
            "invoice_pdf",
        ]
    )
    return entry


@transaction.atomic
def topup_payment_failed(*, session: dict[str, Any], status: str = TopUp.Status.FAILED) -> TopUp | None:
    """An asynchronous payment (e.g. a bank debit) failed, or the session expired: nothing is credited."""
    topup = _topup_for_session(session)
    if topup is None or topup.status != TopUp.Status.PENDING:
        return topup  # a credited top-up never goes back to failed
    topup.status = status
    topup.failure_message = "Asynchronous payment failed." if status == TopUp.Status.FAILED else "Session expired."
    topup.save(update_fields=["status", "failure_message"])
    return topup


# --- Refunds and disputes ------------------------------------------------------------------


def _topup_for_payment_intent(payment_intent_id: str) -> TopUp | None:
    """The locked top-up paid by a PaymentIntent; credits its session first if that webhook has not arrived yet."""
    if not payment_intent_id:
        return None
    topup = TopUp.objects.select_for_update().filter(stripe_payment_intent_id=payment_intent_id).first()
    if topup is not None:
        return topup
    for session in stripe_api.checkout_sessions_for_payment_intent(payment_intent_id=payment_intent_id):
        topup_fulfil(session=session)
    return TopUp.objects.select_for_update().filter(stripe_payment_intent_id=payment_intent_id).first()


def _share(topup: TopUp, amount: int, charged: int) -> int:
    """Tokens bought by `amount` of a charge of `charged` (minor units), rounded half up."""
    charged = charged or topup.amount
    if charged <= 0:
        return 0
    return min(topup.tokens, (topup.tokens * amount + charged // 2) // charged)


@transaction.atomic
def charge_refunds_apply(*, charge: dict[str, Any]) -> list[LedgerEntry]:
    """Remove the refunded share of a top-up, one negative entry per Stripe refund. The balance may go negative."""
    topup = _topup_for_payment_intent(_id(charge.get("payment_intent")))
    if topup is None:
        logger.warning("Refunded charge %s does not pay a Tingxie top-up; ignored.", charge.get("id"))
        return []
    embedded = charge.get("refunds") or {}
    if embedded.get("data") is not None and not embedded.get("has_more"):
        refunds = embedded["data"]
    else:
        refunds = stripe_api.refunds_for_charge(charge_id=charge["id"])
    refunds = sorted(
        (r for r in refunds if r.get("status") in REFUND_COUNTED_STATUSES), key=lambda r: (r.get("created", 0), r["id"])
    )
    refund_ids = [r["id"] for r in refunds]
    already = -(
        LedgerEntry.objects.filter(kind=Kind.REFUND, external_ref__in=refund_ids).aggregate(s=Sum("available_delta"))[
            "s"
        ]
        or 0
    )
    entries = []
    for refund in refunds:
        if LedgerEntry.objects.filter(kind=Kind.REFUND, external_ref=refund["id"]).exists():
            continue
        tokens = min(_share(topup, refund.get("amount") or 0, charge.get("amount") or 0), topup.tokens - already)
        if tokens <= 0:
            continue
        entry = external_entry_write(
            tenant=topup.tenant,
            kind=Kind.REFUND,
            tokens=-tokens,
            external_ref=refund["id"],
            memo=f"Stripe refund of {(refund.get('amount') or 0) / 100:.2f} {topup.currency.upper()} for session {topup.stripe_session_id}",
        )
        if entry is not None:
            already += tokens
            entries.append(entry)
    return entries


def _dispute_debit(topup: TopUp, dispute: dict[str, Any]) -> LedgerEntry:
    tokens = _share(topup, dispute.get("amount") or 0, topup.amount)
    external_entry_write(
        tenant=topup.tenant,
        kind=Kind.DISPUTE,
        tokens=-tokens,
        external_ref=dispute["id"],
        memo=f"Stripe dispute ({dispute.get('reason', 'unknown')}) on session {topup.stripe_session_id}",
    )
    return LedgerEntry.objects.get(kind=Kind.DISPUTE, external_ref=dispute["id"])


@transaction.atomic
def dispute_open(*, dispute: dict[str, Any]) -> LedgerEntry | None:
    """A dispute withdraws the disputed share of the tokens (inquiries, `warning_*`, withdraw nothing)."""
    if str(dispute.get("status", "")).startswith("warning_"):
        return None
    topup = _topup_for_payment_intent(_id(dispute.get("payment_intent")))
    if topup is None:
        logger.warning("Dispute %s is not on a Tingxie top-up; ignored.", dispute.get("id"))
        return None
    return _dispute_debit(topup, dispute)


@transaction.atomic
def dispute_close(*, dispute: dict[str, Any]) -> LedgerEntry | None:
    """A won dispute gives the withdrawn tokens back; written even if `created` came late or never."""
    if dispute.get("status") not in ("won", "lost"):
        return None
    topup = _topup_for_payment_intent(_id(dispute.get("payment_intent")))
    if topup is None:
        logger.warning("Dispute %s is not on a Tingxie top-up; ignored.", dispute.get("id"))
        return None
    debit = _dispute_debit(topup, dispute)  # no-op when `charge.dispute.created` already wrote it
    if dispute["status"] != "won":
        return None
    return external_entry_write(
        tenant=topup.tenant,
        kind=Kind.DISPUTE_REVERSAL,
        tokens=-debit.available_delta,
        external_ref=dispute["id"],
        memo=f"Stripe dispute won on session {topup.stripe_session_id}",
    )


# --- Reconciliation ------------------------------------------------------------------------


@dataclass
class ReconcileResult:
    checked: int = 0
    credited: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def topups_reconcile(*, days: int) -> ReconcileResult:
    """Credit paid Checkout Sessions of the last `days` days whose webhook never arrived. Idempotent."""
    since = int((timezone.now() - timedelta(days=days)).timestamp())
    result = ReconcileResult()
    for session in stripe_api.checkout_sessions_complete_since(created_gte=since):
        result.checked += 1
        if session.get("payment_status") != "paid":
            continue
        if not (session.get("metadata") or {}).get("tenant_id"):
            result.skipped.append(session["id"])
            continue
        if topup_fulfil(session=session) is not None:
            result.credited.append(session["id"])
    return result
