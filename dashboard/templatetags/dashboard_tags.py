"""Small display helpers for dashboard templates."""

from django import template
from django.utils.translation import gettext_lazy as _

from dashboard.permissions import ROLE_LABELS

register = template.Library()

STATUS_LABELS = {
    "queued": _("Queued"),
    "running": _("Running"),
    "succeeded": _("Done"),
    "failed": _("Failed"),
    "canceled": _("Canceled"),
}
LEDGER_LABELS = {
    "grant": _("Grant"),
    "topup": _("Top-up"),
    "hold": _("Hold"),
    "hold_extend": _("Hold extension"),
    "release": _("Release"),
    "debit": _("Debit"),
    "refund": _("Refund"),
    "dispute": _("Dispute"),
    "dispute_reversal": _("Dispute reversal"),
    "adjustment": _("Adjustment"),
}
TOPUP_LABELS = {
    "pending": _("Pending"),
    "paid": _("Paid"),
    "failed": _("Payment failed"),
    "expired": _("Expired"),
}
LANGUAGE_LABELS = {
    "auto": _("Auto"),
    "zh": _("Chinese"),
    "en": _("English"),
    "yue": _("Cantonese"),
    "ja": _("Japanese"),
    "ko": _("Korean"),
}


@register.filter
def status_label(value):
    return STATUS_LABELS.get(value, value)


@register.filter
def ledger_label(value):
    return LEDGER_LABELS.get(value, value)


@register.filter
def topup_label(value):
    return TOPUP_LABELS.get(value, value)


@register.filter
def role_label(value):
    return ROLE_LABELS.get(value, value)


@register.filter
def language_label(value):
    return LANGUAGE_LABELS.get(value, value or "—")


@register.filter
def clock(seconds):
    """Seconds as m:ss.s (or h:mm:ss), for segment timestamps and durations."""
    if seconds is None or seconds == "":
        return "—"
    seconds = float(seconds)
    h, rem = divmod(int(seconds), 3600)
    m, s = divmod(rem, 60)
    if h:
        return f"{h}:{m:02d}:{s:02d}"
    return f"{m}:{seconds - 60 * (h * 60 + m):04.1f}"


@register.filter
def percent(value):
    try:
        return round(float(value) * 100)
    except (TypeError, ValueError):
        return 0


@register.filter
def money(amount, currency):
    """Minor units to a price label: 1999, 'usd' -> '$19.99'."""
    symbol = {"usd": "$", "cny": "¥"}.get((currency or "").lower(), "")
    return f"{symbol}{(amount or 0) / 100:,.2f}" + ("" if symbol else f" {(currency or '').upper()}")
