"""The one module that imports `stripe`: a configured client and plain-dict results for the rest of the code."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Iterator
from typing import Any

import stripe
from django.conf import settings

from portal.errors import DomainError

logger = logging.getLogger(__name__)

# Stripe's own default; signatures older than this are refused (replay protection), and so are signatures
# dated further than this in the future (the SDK only checks the past).
WEBHOOK_TOLERANCE_SECONDS = 300


class PaymentProviderError(DomainError):
    code = "payment_provider_error"
    status_code = 502


class PaymentsUnavailable(DomainError):
    """This deployment takes no payments (no STRIPE_SECRET_KEY): nothing is started or recorded."""

    code = "payments_unavailable"
    status_code = 503


def payments_configured() -> bool:
    return bool(settings.STRIPE_SECRET_KEY)


class SignatureError(Exception):
    """A webhook whose Stripe-Signature does not match the raw body, or is stale."""


@functools.lru_cache(maxsize=4)
def _client(api_key: str, api_version: str, api_base: str) -> stripe.StripeClient:
    base_addresses = {"api": api_base} if api_base else None
    return stripe.StripeClient(
        api_key, stripe_version=api_version, base_addresses=base_addresses, max_network_retries=2
    )


def client() -> stripe.StripeClient:
    """The client for the current settings (tests change STRIPE_API_BASE; one client per configuration)."""
    if not settings.STRIPE_SECRET_KEY:
        raise PaymentProviderError("Payments are not configured (STRIPE_SECRET_KEY is empty).", status_code=503)
    return _client(settings.STRIPE_SECRET_KEY, settings.STRIPE_API_VERSION, settings.STRIPE_API_BASE or "")


def _plain(obj: Any) -> dict[str, Any]:
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


def _call(what: str, fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except stripe.StripeError as exc:
        logger.warning("Stripe %s failed: %s", what, exc)
        raise PaymentProviderError(
            f"The payment provider refused or failed to {what}: {exc.user_message or exc}"
        ) from exc


def _signature_timestamp(signature_header: str) -> int:
    """`t` of a header the SDK accepted, read the way the SDK reads it (the first `t=` item)."""
    items = [item.split("=", 2) for item in signature_header.split(",")]
    return int(next(item[1] for item in items if item[0] == "t"))


def webhook_verify(*, payload: bytes, signature_header: str | None) -> None:
    """Check `t=...,v1=...` (HMAC-SHA256 of `{t}.{payload}` with STRIPE_WEBHOOK_SECRET) and its age, both ways."""
    secret = settings.STRIPE_WEBHOOK_SECRET
    if not secret:
        raise SignatureError("STRIPE_WEBHOOK_SECRET is not configured.")
    try:
        stripe.WebhookSignature.verify_header(payload, signature_header, secret, WEBHOOK_TOLERANCE_SECONDS)
        signed_at = _signature_timestamp(signature_header or "")
    except (stripe.SignatureVerificationError, UnicodeDecodeError, ValueError, IndexError, StopIteration) as exc:
        raise SignatureError(str(exc) or "Unreadable Stripe-Signature timestamp.") from exc
    if signed_at > time.time() + WEBHOOK_TOLERANCE_SECONDS:
        raise SignatureError("Timestamp is in the future (outside the tolerance zone).")


def checkout_session_open(*, params: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
    session = _call(
        "create a checkout session",
        client().v1.checkout.sessions.create,
        params,
        {"idempotency_key": idempotency_key},
    )
    return _plain(session)


def checkout_session_retrieve(*, session_id: str) -> dict[str, Any]:
    return _plain(_call("retrieve a checkout session", client().v1.checkout.sessions.retrieve, session_id))


def checkout_sessions_for_payment_intent(*, payment_intent_id: str) -> list[dict[str, Any]]:
    page = _call(
        "list checkout sessions",
        client().v1.checkout.sessions.list,
        {"payment_intent": payment_intent_id, "limit": 10},
    )
    return [_plain(s) for s in page.data]


def checkout_sessions_complete_since(*, created_gte: int) -> Iterator[dict[str, Any]]:
    """Every completed Checkout Session created at or after `created_gte` (unix seconds), all pages."""
    page = _call(
        "list checkout sessions",
        client().v1.checkout.sessions.list,
        {"created": {"gte": created_gte}, "status": "complete", "limit": 100},
    )
    try:
        for session in page.auto_paging_iter():
            yield _plain(session)
    except stripe.StripeError as exc:
        raise PaymentProviderError(f"The payment provider failed to list checkout sessions: {exc}") from exc


def refunds_for_charge(*, charge_id: str) -> list[dict[str, Any]]:
    page = _call("list refunds", client().v1.refunds.list, {"charge": charge_id, "limit": 100})
    try:
        return [_plain(r) for r in page.auto_paging_iter()]
    except stripe.StripeError as exc:
        raise PaymentProviderError(f"The payment provider failed to list refunds: {exc}") from exc


def invoices_for_customer(*, customer_id: str, limit: int = 100) -> list[dict[str, Any]]:
    page = _call("list invoices", client().v1.invoices.list, {"customer": customer_id, "limit": limit})
    return [_plain(i) for i in page.data]
