"""/app/keys/: create (the raw key is shown once), list with last use, revoke."""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from dashboard import permissions as p
from dashboard.forms import ApiKeyCreateForm
from dashboard.views.base import tenant_view
from portal.errors import NotFound
from tenants.models import ApiKey
from tenants.selectors import api_key_get, api_key_list
from tenants.services import api_key_create, api_key_revoke

SESSION_NEW_KEY = "new_api_key"


@tenant_view(p.MANAGE_KEYS)
def key_list(request):
    form = ApiKeyCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        key, raw = api_key_create(tenant=request.tenant, name=form.cleaned_data["name"], created_by=request.user)
        # Post/redirect/get: the raw key waits in the session for exactly one page view.
        request.session[SESSION_NEW_KEY] = {"id": str(key.pk), "tenant_id": request.tenant.pk, "raw": raw}
        return redirect("dashboard:keys")
    new_key = None
    pending = request.session.pop(SESSION_NEW_KEY, None)
    keys = api_key_list(tenant=request.tenant).select_related("created_by")
    if pending and pending.get("tenant_id") == request.tenant.pk:
        key = keys.filter(pk=pending["id"]).first()
        if key is not None:
            new_key = {"key": key, "raw": pending["raw"]}
    status = 400 if request.method == "POST" else 200
    response = render(request, "dashboard/keys.html", {"form": form, "keys": keys, "new_key": new_key}, status=status)
    response["Cache-Control"] = "no-store"
    return response


@require_POST
@tenant_view(p.MANAGE_KEYS)
def key_revoke(request, key_id: str):
    try:
        key = api_key_get(tenant=request.tenant, key_id=key_id)
    except ApiKey.DoesNotExist:
        raise NotFound("No such key.") from None
    api_key_revoke(key=key)
    messages.success(
        request, _("The key “%(name)s” is revoked; requests with it now fail with 401.") % {"name": key.name}
    )
    return redirect("dashboard:keys")
