"""Session-level pages: tenant switcher, time zone, the no-workspace page, accepting invitations."""

import zoneinfo

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from dashboard.adapters import SESSION_INVITATION_KEY
from dashboard.forms import WorkspaceCreateForm
from dashboard.selectors import invitation_get_by_token, invitations_for_email, membership_current
from dashboard.services import signup_tenant_create, tenant_switch
from portal.errors import DomainError, NotFound
from tenants.services import invitation_accept


@require_POST
@login_required
def switch_tenant(request):
    try:
        membership = tenant_switch(request=request, tenant_id=request.POST.get("tenant", ""))
    except NotFound:
        return render(request, "404.html", status=404)
    messages.info(request, _("You are now working in %(name)s.") % {"name": membership.tenant.name})
    # The page we came from may belong to the previous tenant: go to the overview.
    return redirect("dashboard:overview")


@require_POST
def set_timezone(request):
    """The browser posts its IANA time zone once per session; times are then shown in it."""
    name = request.POST.get("tz", "")
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return HttpResponseBadRequest("unknown time zone")
    request.session["tz"] = name
    return HttpResponse(status=204)


@login_required
def welcome(request):
    """A signed-in user without a workspace: accept an invitation or create a workspace."""
    if membership_current(request=request) is not None:
        return redirect("dashboard:overview")
    form = WorkspaceCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        signup_tenant_create(user=request.user, company=form.cleaned_data["company"])
        return redirect("dashboard:overview")
    invitations = invitations_for_email(email=request.user.email) if request.user.email else []
    return render(request, "dashboard/welcome.html", {"form": form, "invitations": invitations})


def invitation_accept_view(request, token: str):
    invitation = invitation_get_by_token(token=token)
    if invitation is None or not invitation.is_pending:
        return render(request, "dashboard/invitation.html", {"invitation": None}, status=404)
    if not request.user.is_authenticated:
        # Remember it: signing up with the invited email joins this tenant (see adapters.py).
        request.session[SESSION_INVITATION_KEY] = token
        return render(request, "dashboard/invitation.html", {"invitation": invitation, "anonymous": True})
    if request.method == "POST":
        try:
            membership = invitation_accept(invitation=invitation, user=request.user)
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            tenant_switch(request=request, tenant_id=membership.tenant_id)
            messages.success(request, _("Welcome to %(name)s.") % {"name": membership.tenant.name})
            return redirect("dashboard:overview")
    return render(request, "dashboard/invitation.html", {"invitation": invitation})
