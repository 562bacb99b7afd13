"""Dashboard reads: the signed-in user's current tenant and membership, and chart data."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from tenants.models import Invitation, Membership

SESSION_TENANT_KEY = "tenant_id"


def membership_current(*, request) -> Membership | None:
    """The membership of the tenant chosen in the session, validated against the user's memberships.

    Falls back to the user's oldest membership when the session names no tenant or a tenant the
    user no longer belongs to. Cached on the request.
    """
    if hasattr(request, "_dashboard_membership"):
        return request._dashboard_membership
    membership = None
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        memberships = Membership.objects.filter(user=user).select_related("tenant")
        wanted = request.session.get(SESSION_TENANT_KEY)
        if wanted is not None:
            membership = memberships.filter(tenant_id=wanted).first()
        if membership is None:
            membership = memberships.order_by("created_at", "pk").first()
            if membership is not None:
                request.session[SESSION_TENANT_KEY] = membership.tenant_id
            else:
                request.session.pop(SESSION_TENANT_KEY, None)
    request._dashboard_membership = membership
    return membership


def memberships_for_switcher(*, user) -> list[Membership]:
    return list(Membership.objects.filter(user=user).select_related("tenant").order_by("tenant__name", "tenant_id"))


def invitation_list_pending(*, tenant) -> list[Invitation]:
    now = timezone.now()
    return list(Invitation.objects.filter(tenant=tenant, accepted_at=None, revoked_at=None, expires_at__gt=now))


def invitation_get_by_token(*, token: str) -> Invitation | None:
    return Invitation.objects.select_related("tenant").filter(token=token).first()


def invitation_get(*, tenant, invitation_id) -> Invitation | None:
    if not str(invitation_id).isdigit():
        return None
    return Invitation.objects.filter(tenant=tenant, pk=invitation_id).first()


def invitations_for_email(*, email: str) -> list[Invitation]:
    now = timezone.now()
    return list(
        Invitation.objects.select_related("tenant").filter(
            email__iexact=email, accepted_at=None, revoked_at=None, expires_at__gt=now
        )
    )


def usage_chart(*, tenant, days: int = 30) -> dict:
    """Last `days` days of usage (in the active time zone) with bar geometry for an inline SVG."""
    from transcription.selectors import usage_by_day

    end = timezone.localdate()
    start = end - timedelta(days=days - 1)
    rows = usage_by_day(tenant=tenant, start=start, end=end)
    series = []
    for key, label in (("jobs", "jobs"), ("audio_minutes", "audio minutes"), ("tokens", "tokens")):
        values = [(r["audio_seconds"] / 60.0 if key == "audio_minutes" else r[key]) for r in rows]
        peak = max(values) if values else 0
        bars = []
        for i, (r, v) in enumerate(zip(rows, values, strict=True)):
            h = 0 if not peak else max(1.0, 100.0 * v / peak) if v else 0
            bars.append({"x": i * 10, "h": round(h, 2), "y": round(100 - h, 2), "day": r["day"], "value": v})
        series.append({"key": key, "label": label, "total": sum(values), "peak": peak, "bars": bars})
    return {"start": start, "end": end, "days": days, "series": series, "width": days * 10}
