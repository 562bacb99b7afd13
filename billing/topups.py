"""Top-ups through Stripe Checkout: create the session, record it, credit a paid session of ours once.

A session is credited only if our checkout recorded it (a `TopUp` with its session id), it charged exactly the
price recorded there, and the tokens are always the recorded ones; anything else is a Stripe anomaly for
finance. Every credit goes through `external_entry_write`, whose unique (kind, external_ref) makes it happen at
most once whichever path (webhook, retry, reconciliation) gets there first. Lock order: the top-up row, then
the account (inside `external_entry_write`). Refunds and disputes are in `billing.reversals`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from billing import stripe_api
from billing.models import Currency, LedgerEntry, TokenPack, TokenPackPrice, TopUp
from billing.services import external_entry_write
from billing.stripe_events import Anomaly, Reason, ref, required_id, short, stripe_anomaly_record
from portal.errors import InvalidRequest
from tenants.models import Tenant

logger = logging.getLogger(__name__)

Kind = LedgerEntry.Kind


# --- Checkout ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckoutStarted:
    topup: TopUp
    session_id: str
    url: str


def _pack_price(pack_code: str, currency: str | None) -> tuple[TokenPack, TokenPackPrice]:
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
    return pack, price


def _checkout_params(*, tenant, topup: TopUp, user) -> dict[str, Any]:
    """Stripe Checkout parameters for a recorded top-up (its pack, currency and amount are what we charge)."""
    pack = topup.pack
    metadata = {
        "tenant_id": str(tenant.pk),
        "tenant_slug": tenant.slug,
        "pack": pack.code,
        "tokens": str(topup.tokens),
        "topup_id": str(topup.pk),
    }
    customer_id = (
        TopUp.objects.filter(tenant=tenant)
        .exclude(stripe_customer_id="")
        .values_list("stripe_customer_id", flat=True)
        .first()
    )
    site = settings.SITE_URL.rstrip("/")
    product = {"name": f"Tingxie {pack.name}: {topup.tokens:,} tokens", "metadata": {"pack": pack.code}}
    params: dict[str, Any] = {
        "mode": "payment",
        # No payment_method_types: Checkout offers what the account enables for the currency
        # (cards; Alipay and WeChat Pay for CNY).
        "line_items": [
            {
                "quantity": 1,
                "price_data": {"currency": topup.currency, "unit_amount": topup.amount, "product_data": product},
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
    return params


def checkout_session_create(*, tenant, pack_code: str, currency: str | None = None, user=None) -> CheckoutStarted:
    """Open a Stripe Checkout Session for one pack and record it as a pending top-up (the price credited later)."""
    if not stripe_api.payments_configured():
        raise stripe_api.PaymentsUnavailable(
            "Buying tokens is not available on this server (no payment provider is configured). "
            "Ask the operator to grant tokens, or to set STRIPE_SECRET_KEY."
        )
    pack, price = _pack_price(pack_code, currency)
    topup = TopUp.objects.create(
        tenant=tenant, pack=pack, tokens=pack.tokens, currency=price.currency, amount=price.unit_amount, created_by=user
    )
    params = _checkout_params(tenant=tenant, topup=topup, user=user)
    try:
        session = stripe_api.checkout_session_open(params=params, idempotency_key=f"tingxie-topup-{topup.pk}")
    except stripe_api.PaymentProviderError as exc:
        topup.status = TopUp.Status.FAILED
        topup.failure_message = exc.message
        topup.save(update_fields=["status", "failure_message"])
        raise
    topup.stripe_session_id = session["id"]
    topup.save(update_fields=["stripe_session_id"])
    return CheckoutStarted(topup=topup, session_id=session["id"], url=session.get("url") or "")


# --- Fulfilment --------------------------------------------------------------------------


def _tenant_hint(value: Any) -> int | None:
    """The tenant a session's metadata claims, if it exists (for the anomaly row only; it decides nothing)."""
    if not (isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18):
        return None
    return Tenant.objects.filter(pk=int(value)).values_list("pk", flat=True).first()


def _orphan_topup(session_id: str, topup_id: Any, tenant_id: Any) -> TopUp | None:
    """Our pending top-up whose session id was never saved (the process died right after Stripe answered)."""
    if _tenant_hint(tenant_id) is None or not (isinstance(topup_id, str) and topup_id.isascii()):
        return None
    if not (topup_id.isdigit() and len(topup_id) <= 18):
        return None
    topup = (
        TopUp.objects.select_for_update()
        .filter(pk=int(topup_id), tenant_id=int(tenant_id), stripe_session_id__isnull=True, status=TopUp.Status.PENDING)
        .first()
    )
    if topup is not None:
        topup.stripe_session_id = session_id  # rolled back with the rest if the amount does not match
        topup.save(update_fields=["stripe_session_id"])
    return topup


def _topup_for_session(session: dict[str, Any], session_id: str) -> TopUp:
    """The locked top-up that our checkout recorded for this session, consistent with the session's metadata."""
    metadata = session.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    topup_ref, tenant_ref = metadata.get("topup_id"), metadata.get("tenant_id")
    client_ref = session.get("client_reference_id")
    topup = TopUp.objects.select_for_update().filter(stripe_session_id=session_id).first()
    if topup is None:
        topup = _orphan_topup(session_id, topup_ref, tenant_ref or client_ref)
    if topup is None:
        raise Anomaly(
            Reason.UNKNOWN_SESSION,
            f"Checkout session {session_id} was not created by Tingxie's checkout; metadata {short(metadata)}.",
            tenant_id=_tenant_hint(tenant_ref) or _tenant_hint(client_ref),
            received_amount=session.get("amount_total"),
            received_currency=session.get("currency"),
        )
    context = {"tenant_id": topup.tenant_id, "topup_id": topup.pk}
    if topup_ref not in (None, "") and topup_ref != str(topup.pk):
        raise Anomaly(
            Reason.TOPUP_MISMATCH,
            f"Session {session_id} belongs to top-up {topup.pk} but its metadata names top-up {short(topup_ref)}.",
            **context,
        )
    for field_name, claimed in (("metadata.tenant_id", tenant_ref), ("client_reference_id", client_ref)):
        if claimed not in (None, "") and claimed != str(topup.tenant_id):
            raise Anomaly(
                Reason.TENANT_MISMATCH,
                f"Session {session_id} was bought by tenant {topup.tenant_id} but its {field_name} is {short(claimed)}.",
                **context,
            )
    return topup


def _check_paid_price(topup: TopUp, session: dict[str, Any], session_id: str) -> None:
    """The session charged exactly the price recorded on the top-up at checkout, in its currency."""
    currency, paid = session.get("currency"), session.get("amount_total")
    context = {
        "tenant_id": topup.tenant_id,
        "topup_id": topup.pk,
        "expected_amount": topup.amount,
        "expected_currency": topup.currency,
        "received_amount": paid,
        "received_currency": currency,
    }
    price = f"{topup.amount} {topup.currency.upper()} (minor units)"
    if not isinstance(currency, str) or currency.lower() != topup.currency:
        raise Anomaly(
            Reason.CURRENCY_MISMATCH,
            f"Session {session_id} was paid in {short(currency, 20)}; top-up {topup.pk} costs {price}.",
            **context,
        )
    if type(paid) is not int or paid != topup.amount:
        raise Anomaly(
            Reason.AMOUNT_MISMATCH,
            f"Session {session_id} charged {short(paid, 40)}; top-up {topup.pk} costs {price}.",
            **context,
        )


@transaction.atomic
def topup_fulfil(*, session: dict[str, Any]) -> LedgerEntry | None:
    """Credit a paid Checkout Session of ours once, with the tokens recorded at checkout (never the metadata's).

    Returns the new entry, or None if unpaid or already credited; raises `Anomaly` (nothing written) for a
    session our checkout did not record, or one that charged another amount or currency than recorded.
    """
    session_id = required_id(session, what="checkout session")
    if session.get("payment_status") != "paid":
        return None
    topup = _topup_for_session(session, session_id)
    _check_paid_price(topup, session, session_id)
    pack_label = topup.pack.code if topup.pack_id else "tokens"
    entry = external_entry_write(
        tenant=topup.tenant,
        kind=Kind.TOPUP,
        tokens=topup.tokens,
        external_ref=session_id,
        memo=f"Stripe Checkout {pack_label}: {topup.amount / 100:.2f} {topup.currency.upper()}",
    )
    if entry is None and topup.ledger_entry_id is None:
        topup.ledger_entry = LedgerEntry.objects.filter(kind=Kind.TOPUP, external_ref=session_id).first()
    elif entry is not None:
        topup.ledger_entry = entry
    topup.status = TopUp.Status.PAID
    topup.paid_at = topup.paid_at or timezone.now()
    topup.failure_message = ""
    topup.stripe_payment_intent_id = ref(session.get("payment_intent")) or topup.stripe_payment_intent_id
    topup.stripe_customer_id = ref(session.get("customer")) or topup.stripe_customer_id
    topup.stripe_invoice_id = ref(session.get("invoice")) or topup.stripe_invoice_id
    invoice = session.get("invoice")
    if isinstance(invoice, dict):
        topup.hosted_invoice_url = _url(invoice.get("hosted_invoice_url")) or topup.hosted_invoice_url
        topup.invoice_pdf = _url(invoice.get("invoice_pdf")) or topup.invoice_pdf
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


def _url(value: Any) -> str:
    return value if isinstance(value, str) and value.startswith("https://") and len(value) <= 1000 else ""


@transaction.atomic
def topup_payment_failed(*, session: dict[str, Any], status: str = TopUp.Status.FAILED) -> TopUp | None:
    """An asynchronous payment (e.g. a bank debit) failed, or the session expired: nothing is credited."""
    session_id = required_id(session, what="checkout session")
    topup = TopUp.objects.select_for_update().filter(stripe_session_id=session_id).first()
    if topup is None or topup.status != TopUp.Status.PENDING:
        return topup  # not ours, or a credited top-up, which never goes back to failed
    topup.status = status
    topup.failure_message = "Asynchronous payment failed." if status == TopUp.Status.FAILED else "Session expired."
    topup.save(update_fields=["status", "failure_message"])
    return topup


# --- Reconciliation ------------------------------------------------------------------------


@dataclass
class ReconcileResult:
    checked: int = 0
    credited: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def topups_reconcile(*, days: int) -> ReconcileResult:
    """Credit paid Checkout Sessions of the last `days` days whose webhook never arrived. Idempotent.

    A session with our metadata that our checkout did not record (or that charged another price) is recorded
    as a Stripe anomaly, once per session and reason, and skipped.
    """
    since = int((timezone.now() - timedelta(days=days)).timestamp())
    result = ReconcileResult()
    for session in stripe_api.checkout_sessions_complete_since(created_gte=since):
        result.checked += 1
        session_id = ref(session.get("id"))
        if session.get("payment_status") != "paid":
            continue
        metadata = session.get("metadata")
        if not (isinstance(metadata, dict) and metadata.get("tenant_id")):
            result.skipped.append(session_id)
            continue
        try:
            entry = topup_fulfil(session=session)
        except Anomaly as exc:
            stripe_anomaly_record(anomaly=exc, payload=session, object_id=session_id)
            result.skipped.append(session_id)
            continue
        if entry is not None:
            result.credited.append(session_id)
    return result
