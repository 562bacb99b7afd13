"""Stripe webhooks (Zulip's corporate webhook shape): verify the signature, store the event once, process it once."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from billing import stripe_api, topups
from billing.models import StripeEvent, TopUp
from portal.errors import error_body

logger = logging.getLogger(__name__)

HANDLERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "checkout.session.completed": lambda obj: topups.topup_fulfil(session=obj),
    "checkout.session.async_payment_succeeded": lambda obj: topups.topup_fulfil(session=obj),
    "checkout.session.async_payment_failed": lambda obj: topups.topup_payment_failed(session=obj),
    "checkout.session.expired": lambda obj: topups.topup_payment_failed(session=obj, status=TopUp.Status.EXPIRED),
    "charge.refunded": lambda obj: topups.charge_refunds_apply(charge=obj),
    "charge.dispute.created": lambda obj: topups.dispute_open(dispute=obj),
    "charge.dispute.closed": lambda obj: topups.dispute_close(dispute=obj),
}


def stripe_event_record(*, event: dict[str, Any]) -> tuple[StripeEvent, bool]:
    """Store a verified event once by its id; returns (row, created)."""
    obj = (event.get("data") or {}).get("object") or {}
    created_ts = event.get("created")
    try:
        with transaction.atomic():
            row = StripeEvent.objects.create(
                event_id=event["id"],
                type=event["type"],
                api_version=event.get("api_version") or "",
                livemode=bool(event.get("livemode")),
                object_id=obj.get("id") or "",
                payload=event,
                stripe_created_at=datetime.fromtimestamp(created_ts, tz=UTC) if created_ts else None,
            )
            return row, True
    except IntegrityError:
        return StripeEvent.objects.get(event_id=event["id"]), False


def stripe_event_process(*, event_id: str) -> str:
    """Run the handler of a stored event unless it already ran; the handler and the status commit together."""
    try:
        with transaction.atomic():
            row = StripeEvent.objects.select_for_update().get(event_id=event_id)
            if row.status in (StripeEvent.Status.PROCESSED, StripeEvent.Status.IGNORED):
                return row.status
            handler = HANDLERS.get(row.type)
            if handler is not None:
                handler(row.payload["data"]["object"])
            row.status = StripeEvent.Status.PROCESSED if handler is not None else StripeEvent.Status.IGNORED
            row.attempts += 1
            row.error = ""
            row.processed_at = timezone.now()
            row.save(update_fields=["status", "attempts", "error", "processed_at"])
            return row.status
    except Exception as exc:
        # Everything the handler wrote is rolled back; record the failure so finance can see it.
        StripeEvent.objects.filter(event_id=event_id).exclude(status=StripeEvent.Status.PROCESSED).update(
            status=StripeEvent.Status.FAILED, attempts=F("attempts") + 1, error=f"{type(exc).__name__}: {exc}"[:2000]
        )
        raise


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> JsonResponse:
    """POST /webhooks/stripe/: 400 on a bad or stale signature (nothing stored), 500 on a handler error (Stripe retries)."""
    payload = request.body
    try:
        stripe_api.webhook_verify(payload=payload, signature_header=request.headers.get("Stripe-Signature"))
    except stripe_api.SignatureError as exc:
        logger.warning("Stripe webhook refused: %s", exc)
        return JsonResponse(error_body("invalid_request", f"Invalid Stripe-Signature: {exc}"), status=400)
    try:
        event = json.loads(payload)
        event_id, event_type = event["id"], event["type"]
    except (ValueError, KeyError, TypeError):
        return JsonResponse(error_body("invalid_request", "The body is not a Stripe event."), status=400)
    if event.get("api_version") and event["api_version"] != settings.STRIPE_API_VERSION:
        logger.warning(
            "Stripe event %s has API version %s; we pin %s. Processing it anyway.",
            event_id,
            event["api_version"],
            settings.STRIPE_API_VERSION,
        )
    stripe_event_record(event=event)
    try:
        status = stripe_event_process(event_id=event_id)
    except Exception:
        logger.exception("Stripe event %s (%s) failed; Stripe will retry.", event_id, event_type)
        return JsonResponse(
            error_body("processing_failed", "The event could not be processed; retry later."), status=500
        )
    return JsonResponse({"received": True, "id": event_id, "status": status})
