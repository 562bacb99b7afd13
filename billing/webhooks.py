"""Stripe webhooks (Zulip's corporate webhook shape): verify the signature, store the event once, process it once.

A payload that is not a storable event is answered 400 (nothing stored); an object that must not be credited
or reversed as it stands is recorded as a `StripeAnomaly` and answered 200 (nothing credited, no retries);
only an unexpected error (e.g. Stripe's API down during a refund) is a 500 that Stripe retries.
"""

from __future__ import annotations

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

from billing import reversals, stripe_api, stripe_events, topups
from billing.models import StripeEvent, TopUp
from portal import metrics
from portal.errors import error_body

logger = logging.getLogger(__name__)

HANDLERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "checkout.session.completed": lambda obj: topups.topup_fulfil(session=obj),
    "checkout.session.async_payment_succeeded": lambda obj: topups.topup_fulfil(session=obj),
    "checkout.session.async_payment_failed": lambda obj: topups.topup_payment_failed(session=obj),
    "checkout.session.expired": lambda obj: topups.topup_payment_failed(session=obj, status=TopUp.Status.EXPIRED),
    "charge.refunded": lambda obj: reversals.charge_refunds_apply(charge=obj),
    "charge.dispute.created": lambda obj: reversals.dispute_open(dispute=obj),
    "charge.dispute.closed": lambda obj: reversals.dispute_close(dispute=obj),
}


def stripe_event_record(*, event: dict[str, Any]) -> tuple[StripeEvent, bool]:
    """Store a verified event (checked by `stripe_events.event_parse`) once by its id; returns (row, created)."""
    obj = event["data"]["object"]
    created_ts = event.get("created")
    try:
        with transaction.atomic():
            row = StripeEvent.objects.create(
                event_id=event["id"],
                type=event["type"],
                api_version=event.get("api_version") or "",
                livemode=bool(event.get("livemode")),
                object_id=stripe_events.ref(obj.get("id")),
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
            anomaly = _handle(row, handler) if handler is not None else None
            processed = handler is not None and anomaly is None
            row.status = StripeEvent.Status.PROCESSED if processed else StripeEvent.Status.IGNORED
            row.attempts += 1
            row.error = f"Anomaly {anomaly.reason}: {anomaly.detail}"[:2000] if anomaly else ""
            row.processed_at = timezone.now()
            row.save(update_fields=["status", "attempts", "error", "processed_at"])
            return row.status
    except Exception as exc:
        # Everything the handler wrote is rolled back; record the failure so finance can see it.
        StripeEvent.objects.filter(event_id=event_id).exclude(status=StripeEvent.Status.PROCESSED).update(
            status=StripeEvent.Status.FAILED, attempts=F("attempts") + 1, error=f"{type(exc).__name__}: {exc}"[:2000]
        )
        raise


def _handle(row: StripeEvent, handler: Callable[[dict[str, Any]], Any]) -> stripe_events.Anomaly | None:
    """Run the handler in a savepoint; an anomaly rolls back what it wrote and is recorded instead."""
    try:
        with transaction.atomic():
            handler(stripe_events.event_object(row.payload))
    except stripe_events.Anomaly as anomaly:
        stripe_events.stripe_anomaly_record(
            anomaly=anomaly, payload=row.payload, event_id=row.event_id, event_type=row.type, object_id=row.object_id
        )
        return anomaly
    return None


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> JsonResponse:
    """POST /webhooks/stripe/: 400 on a bad, stale or future signature or a malformed event (nothing stored),
    200 for a processed, ignored or anomalous event, 500 on an unexpected handler error (Stripe retries)."""
    payload = request.body
    try:
        stripe_api.webhook_verify(payload=payload, signature_header=request.headers.get("Stripe-Signature"))
    except stripe_api.SignatureError as exc:
        logger.warning("Stripe webhook refused: %s", exc)
        return JsonResponse(error_body("invalid_request", f"Invalid Stripe-Signature: {exc}"), status=400)
    try:
        event = stripe_events.event_parse(payload=payload)
    except stripe_events.MalformedEvent as exc:
        logger.warning("Stripe webhook refused: %s", exc)
        return JsonResponse(error_body("invalid_request", f"The body is not a Stripe event: {exc}"), status=400)
    event_id, event_type = event["id"], event["type"]
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
        metrics.STRIPE_EVENTS.labels(status="failed").inc()
        logger.exception("Stripe event %s (%s) failed; Stripe will retry.", event_id, event_type)
        return JsonResponse(
            error_body("processing_failed", "The event could not be processed; retry later."), status=500
        )
    metrics.STRIPE_EVENTS.labels(status=status).inc()
    return JsonResponse({"received": True, "id": event_id, "status": status})
