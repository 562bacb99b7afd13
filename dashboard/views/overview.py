"""/app/: tenant name, balance, 30-day usage chart, recent jobs."""

from django.shortcuts import render

from billing.selectors import balance_get
from billing.stripe_api import payments_configured
from dashboard import permissions as p
from dashboard.selectors import usage_chart
from dashboard.views.base import tenant_view
from transcription.selectors import transcription_list


@tenant_view(p.VIEW_OVERVIEW)
def overview(request):
    role = request.membership.role
    context = {
        "account": balance_get(tenant=request.tenant),
        "payments_enabled": payments_configured(),
        "chart": usage_chart(tenant=request.tenant, days=30) if p.role_has_perm(role, p.VIEW_USAGE) else None,
        "recent_transcriptions": (
            list(transcription_list(tenant=request.tenant)[:8]) if p.role_has_perm(role, p.TRANSCRIBE) else None
        ),
    }
    return render(request, "dashboard/overview.html", context)
