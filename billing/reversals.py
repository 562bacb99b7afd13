"""Refunds and disputes of top-ups: negative ledger entries, each Stripe refund or dispute reversed at most once.

Reversals go through `external_entry_write`, whose unique (kind, external_ref) makes each happen at most once.
Lock order, as for credits: the top-up row, then the account.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.db.models import Sum

from billing import stripe_api
from billing.models import LedgerEntry, TopUp
from billing.services import external_entry_write
from billing.stripe_events import Anomaly, Reason, amount, ref, required_id, short, timestamp
from billing.topups import topup_fulfil

logger = logging.getLogger(__name__)

Kind = LedgerEntry.Kind
# Refunds that took (or are taking) money back; failed / canceled ones did not.
REFUND_COUNTED_STATUSES = ("succeeded", "pending", "requires_action")


def _topup_for_payment_intent(payment_intent_id: str) -> TopUp | None:
    """The locked top-up paid by a PaymentIntent; credits its session first if that webhook has not arrived yet."""
    if not payment_intent_id:
        return None
    topup = TopUp.objects.select_for_update().filter(stripe_payment_intent_id=payment_intent_id).first()
    if topup is not None:
        return topup
    for session in stripe_api.checkout_sessions_for_payment_intent(payment_intent_id=payment_intent_id):
        try:
            topup_fulfil(session=session)
        except Anomaly as exc:
            # Not a session we may credit (its own event records why): nothing to reverse either.
            logger.warning("Session for PaymentIntent %s not credited: %s", payment_intent_id, exc.detail)
    return TopUp.objects.select_for_update().filter(stripe_payment_intent_id=payment_intent_id).first()


def _check_currency(topup: TopUp, obj: dict[str, Any], what: str) -> None:
    currency = obj.get("currency")
    if currency is not None and (not isinstance(currency, str) or currency.lower() != topup.currency):
        raise Anomaly(
            Reason.CURRENCY_MISMATCH,
            f"The {what} is in {short(currency, 20)}; top-up {topup.pk} was paid in {topup.currency.upper()}.",
            tenant_id=topup.tenant_id,
            topup_id=topup.pk,
            expected_amount=topup.amount,
            expected_currency=topup.currency,
            received_amount=obj.get("amount"),
            received_currency=currency,
        )


def _share(topup: TopUp, amount: int) -> int:
    """Tokens bought by `amount` (minor units) of the top-up's recorded price, rounded half up."""
    if topup.amount <= 0:
        return 0
    return min(topup.tokens, (topup.tokens * amount + topup.amount // 2) // topup.amount)


def _counted_refunds(charge: dict[str, Any], charge_id: str) -> list[tuple[int, str, int]]:
    """(created, id, amount) of the charge's refunds that took money back, oldest first."""
    embedded = charge.get("refunds")
    if isinstance(embedded, dict) and isinstance(embedded.get("data"), list) and not embedded.get("has_more"):
        refunds = embedded["data"]
    else:
        refunds = stripe_api.refunds_for_charge(charge_id=charge_id)
    counted = []
    for refund in refunds:
        if not isinstance(refund, dict):
            raise Anomaly(Reason.MALFORMED, f"Charge {charge_id} lists a refund that is not an object.")
        if refund.get("status") not in REFUND_COUNTED_STATUSES:
            continue
        refund_id = required_id(refund, what=f"refund of charge {charge_id}")
        counted.append(
            (timestamp(refund.get("created")), refund_id, amount(refund.get("amount"), what=f"refund {refund_id}"))
        )
    return sorted(counted)


@transaction.atomic
def charge_refunds_apply(*, charge: dict[str, Any]) -> list[LedgerEntry]:
    """Remove the refunded share of a top-up, one negative entry per Stripe refund. The balance may go negative."""
    charge_id = required_id(charge, what="charge")
    topup = _topup_for_payment_intent(ref(charge.get("payment_intent")))
    if topup is None:
        logger.warning("Refunded charge %s does not pay a Tingxie top-up; ignored.", charge_id)
        return []
    _check_currency(topup, charge, f"refunded charge {charge_id}")
    refunds = _counted_refunds(charge, charge_id)
    refund_ids = [refund_id for _, refund_id, _ in refunds]
    written = LedgerEntry.objects.filter(kind=Kind.REFUND, external_ref__in=refund_ids)
    already = -(written.aggregate(s=Sum("available_delta"))["s"] or 0)
    done = set(written.values_list("external_ref", flat=True))
    entries = []
    for _, refund_id, refunded in refunds:
        tokens = min(_share(topup, refunded), topup.tokens - already)
        if refund_id in done or tokens <= 0:
            continue
        entry = external_entry_write(
            tenant=topup.tenant,
            kind=Kind.REFUND,
            tokens=-tokens,
            external_ref=refund_id,
            memo=f"Stripe refund of {refunded / 100:.2f} {topup.currency.upper()} for session {topup.stripe_session_id}",
        )
        if entry is not None:
            already += tokens
            entries.append(entry)
    return entries


def _dispute_topup(dispute: dict[str, Any]) -> tuple[str, TopUp | None]:
    dispute_id = required_id(dispute, what="dispute")
    topup = _topup_for_payment_intent(ref(dispute.get("payment_intent")))
    if topup is None:
        logger.warning("Dispute %s is not on a Tingxie top-up; ignored.", dispute_id)
    else:
        _check_currency(topup, dispute, f"dispute {dispute_id}")
    return dispute_id, topup


def _dispute_debit(topup: TopUp, dispute: dict[str, Any], dispute_id: str) -> LedgerEntry:
    tokens = _share(topup, amount(dispute.get("amount"), what=f"dispute {dispute_id}"))
    reason = dispute.get("reason")
    label = reason[:64] if isinstance(reason, str) else "unknown"
    external_entry_write(
        tenant=topup.tenant,
        kind=Kind.DISPUTE,
        tokens=-tokens,
        external_ref=dispute_id,
        memo=f"Stripe dispute ({label}) on session {topup.stripe_session_id}",
    )
    return LedgerEntry.objects.get(kind=Kind.DISPUTE, external_ref=dispute_id)


@transaction.atomic
def dispute_open(*, dispute: dict[str, Any]) -> LedgerEntry | None:
    """A dispute withdraws the disputed share of the tokens (inquiries, `warning_*`, withdraw nothing)."""
    if str(dispute.get("status", "")).startswith("warning_"):
        return None
    dispute_id, topup = _dispute_topup(dispute)
    return None if topup is None else _dispute_debit(topup, dispute, dispute_id)


@transaction.atomic
def dispute_close(*, dispute: dict[str, Any]) -> LedgerEntry | None:
    """A won dispute gives the withdrawn tokens back; written even if `created` came late or never."""
    status = dispute.get("status")
    if status not in ("won", "lost"):
        return None
    dispute_id, topup = _dispute_topup(dispute)
    if topup is None:
        return None
    debit = _dispute_debit(topup, dispute, dispute_id)  # no-op when `charge.dispute.created` already wrote it
    if status != "won":
        return None
    return external_entry_write(
        tenant=topup.tenant,
        kind=Kind.DISPUTE_REVERSAL,
        tokens=-debit.available_delta,
        external_ref=dispute_id,
        memo=f"Stripe dispute won on session {topup.stripe_session_id}",
    )
