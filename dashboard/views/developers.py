"""/app/developers/: the webhook signing secret (shown to owners and admins, rotatable), how to verify a
webhook's signature, and where the API docs are."""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from dashboard import permissions as p
from dashboard.views.base import tenant_view
from tenants.services import webhook_secret_rotate


@tenant_view(p.MANAGE_KEYS)
def developers(request):
    response = render(request, "dashboard/developers.html", {"webhook_secret": request.tenant.webhook_secret})
    response["Cache-Control"] = "no-store"
    return response


@require_POST
@tenant_view(p.MANAGE_KEYS)
def webhook_secret_rotate_view(request):
    webhook_secret_rotate(tenant=request.tenant)
    messages.success(request, _("A new webhook secret is in use: webhooks sent from now on are signed with it."))
    return redirect("dashboard:developers")
