"""What a signed Stripe event may contain: envelope checks, typed reads of its fields, and the anomalies finance sees.

A valid signature proves Stripe sent the bytes, not that they describe a payment Tingxie asked for: every read
here either yields a well-typed value or raises (`MalformedEvent` before anything is stored, `Anomaly` while
handling), so nothing in a payload can make the webhook fail with a 500 that Stripe would retry for days.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from django.db import IntegrityError, transaction

from billing.models import StripeAnomaly

logger = logging.getLogger(__name__)

Reason = StripeAnomaly.Reason
MAX_ID_LENGTH = 255
MAX_TYPE_LENGTH = 100
MAX_API_VERSION_LENGTH = 64
# Larger than any Stripe amount (12 digits at most) and than any unix time we will see; fits a bigint.
MAX_AMOUNT = 10**12
MAX_TIMESTAMP = 253402300799  # 9999-12-31T23:59:59Z
# Stripe objects nest a handful of levels; far deeper JSON could exhaust the stack when it is stored.
MAX_DEPTH = 64
_BIGINT = 2**63 - 1


class MalformedEvent(ValueError):
    """The body is not a Stripe event we can store (answered 400, nothing stored)."""


class Anomaly(Exception):  # noqa: N818 -- a finding, not a failure: the event is answered 200
    """A Stripe object that must not be credited (or reversed) as it stands; recorded for finance, never retried."""

    def __init__(
        self,
        reason: str,
        detail: str,
        *,
        tenant_id: int | None = None,
        topup_id: int | None = None,
        expected_amount: int | None = None,
        expected_currency: str = "",
        received_amount: Any = None,
        received_currency: Any = "",
    ) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.tenant_id = tenant_id
        self.topup_id = topup_id
        self.expected_amount = expected_amount
        self.expected_currency = expected_currency
        self.received_amount = received_amount
        self.received_currency = received_currency


# --- typed reads ---------------------------------------------------------------------------


def ref(value: Any) -> str:
    """A Stripe reference sent as an id or an expanded object; "" when absent or not a usable id."""
    if isinstance(value, dict):
        value = value.get("id")
    if isinstance(value, str) and len(value) <= MAX_ID_LENGTH:
        return value
    return ""


def required_id(obj: dict[str, Any], *, what: str) -> str:
    """The object's own id; an anomaly when it is missing or not an id."""
    object_id = ref(obj.get("id"))
    if not object_id:
        raise Anomaly(Reason.MALFORMED, f"The {what} has no usable id: {short(obj.get('id'))}.")
    return object_id


def amount(value: Any, *, what: str) -> int:
    """A non-negative amount in a minor unit; an anomaly for anything else (strings, floats, absurd numbers)."""
    if type(value) is not int or not 0 <= value <= MAX_AMOUNT:
        raise Anomaly(Reason.MALFORMED, f"The {what} is not a usable amount: {short(value)}.", received_amount=value)
    return value


def timestamp(value: Any, *, default: int = 0) -> int:
    """A unix time in seconds, or `default` when the field is absent; an anomaly for anything else."""
    if value is None:
        return default
    if type(value) is not int or not 0 <= value <= MAX_TIMESTAMP:
        raise Anomaly(Reason.MALFORMED, f"Not a unix timestamp: {short(value)}.")
    return value


def short(value: Any, limit: int = 200) -> str:
    """A repr for messages, cut to `limit` characters (a payload may carry megabytes)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}..."


# --- the envelope ------------------------------------------------------------------------------


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400: Python reads inf, which JSON (and jsonb) cannot store
        raise ValueError(f"{text[:20]} is out of range")
    return value


def _unstorable(value: Any) -> str:
    """Why the database would refuse the parsed JSON (a 500 later), or "": too deep, or NUL, which jsonb rejects."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            if "\x00" in node:
                return "it contains a NUL character"
            continue
        if depth > MAX_DEPTH:
            return f"it nests deeper than {MAX_DEPTH} levels"
        if isinstance(node, dict):
            stack.extend((key, depth) for key in node)
            stack.extend((child, depth + 1) for child in node.values())
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node)
    return ""


def event_parse(*, payload: bytes) -> dict[str, Any]:
    """The verified body as an event with a usable id, type, `created` and `data.object`; `MalformedEvent` if not."""
    try:
        event = json.loads(payload, parse_constant=_refuse_constant, parse_float=_finite_float)
        json.dumps(event, ensure_ascii=False).encode("utf-8")  # lone surrogates ("\ud800") are not UTF-8
    except (ValueError, RecursionError, UnicodeError) as exc:
        raise MalformedEvent(f"The body is not storable JSON ({exc.__class__.__name__}).") from exc
    if not isinstance(event, dict):
        raise MalformedEvent("The body is not a JSON object.")
    unstorable = _unstorable(event)
    if unstorable:
        raise MalformedEvent(f"The body cannot be stored: {unstorable}.")
    for key, limit in (("id", MAX_ID_LENGTH), ("type", MAX_TYPE_LENGTH)):
        value = event.get(key)
        if not isinstance(value, str) or not 0 < len(value) <= limit:
            raise MalformedEvent(f"The event has no usable {key!r}.")
    api_version = event.get("api_version")
    if api_version is not None and not (isinstance(api_version, str) and len(api_version) <= MAX_API_VERSION_LENGTH):
        raise MalformedEvent("The event's 'api_version' is not a version string.")
    created = event.get("created")
    if created is not None and (type(created) is not int or not 0 <= created <= MAX_TIMESTAMP):
        raise MalformedEvent("The event's 'created' is not a unix timestamp.")
    data = event.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        raise MalformedEvent("The event has no 'data.object'.")
    return event


def event_object(payload: Any) -> dict[str, Any]:
    """`data.object` of a stored event (rows stored before `event_parse` existed may lack it)."""
    data = payload.get("data") if isinstance(payload, dict) else None
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict):
        raise Anomaly(Reason.MALFORMED, "The event has no 'data.object'.")
    return obj


# --- anomalies -----------------------------------------------------------------------------------


def _bigint_or_none(value: Any) -> int | None:
    return value if type(value) is int and -_BIGINT <= value <= _BIGINT else None


def stripe_anomaly_record(
    *, anomaly: Anomaly, payload: Any, event_id: str = "", event_type: str = "", object_id: str = ""
) -> StripeAnomaly:
    """Store the anomaly once per (event, reason) -- or per (object, reason) without an event -- and log it."""
    logger.warning(
        "Stripe anomaly %s on event %s (%s), object %s: %s",
        anomaly.reason,
        event_id or "-",
        event_type or "-",
        object_id or "-",
        anomaly.detail,
    )
    received_currency = anomaly.received_currency
    fields = {
        "event_type": event_type,
        "tenant_id": anomaly.tenant_id,
        "topup_id": anomaly.topup_id,
        "detail": anomaly.detail[:4000],
        "expected_amount": anomaly.expected_amount,
        "expected_currency": anomaly.expected_currency,
        "received_amount": _bigint_or_none(anomaly.received_amount),
        "received_currency": received_currency[:16] if isinstance(received_currency, str) else "",
        "payload": payload,
    }
    key = {"event_id": event_id, "reason": anomaly.reason}
    if not event_id:
        key["object_id"] = object_id
    try:
        with transaction.atomic():
            return StripeAnomaly.objects.create(**{**key, "object_id": object_id, **fields})
    except IntegrityError:
        return StripeAnomaly.objects.get(**key)
