"""/app/members/: invite by email with a role, change roles, remove members, revoke invitations."""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from dashboard import permissions as p
from dashboard.forms import InvitationForm, RoleChangeForm
from dashboard.selectors import invitation_get, invitation_list_pending
from dashboard.services import invitation_send
from dashboard.views.base import client_base_url, tenant_view
from portal.errors import DomainError, NotFound
from tenants.models import Membership
from tenants.selectors import membership_list
from tenants.services import invitation_create, invitation_revoke, membership_remove, membership_role_change


def _target(request, membership_id) -> Membership:
    target = (
        membership_list(tenant=request.tenant).filter(pk=membership_id).first()
        if str(membership_id).isdigit()
        else None
    )
    if target is None:
        raise NotFound("No such member.")
    return target


def _may_manage(request, target: Membership) -> bool:
    """Admins manage admins, members and billing; only owners touch owners."""
    return target.role != Membership.Role.OWNER or p.role_has_perm(request.membership.role, p.MANAGE_OWNERS)


@tenant_view(p.MANAGE_MEMBERS)
def member_list(request):
    roles = p.assignable_roles(request.membership.role)
    form = InvitationForm(request.POST or None, roles=roles)
    if request.method == "POST" and form.is_valid():
        try:
            invitation = invitation_create(
                tenant=request.tenant,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                invited_by=request.user,
            )
        except DomainError as exc:
            form.add_error("email", exc.message)
        else:
            invitation_send(invitation=invitation, base_url=client_base_url(request))
            messages.success(request, _("Invitation sent to %(email)s.") % {"email": invitation.email})
            return redirect("dashboard:members")
    members = list(membership_list(tenant=request.tenant))
    for m in members:
        m.manageable = _may_manage(request, m)
    context = {
        "form": form,
        "members": members,
        "invitations": invitation_list_pending(tenant=request.tenant),
        "roles": [(r, p.ROLE_LABELS[r]) for r in roles],
    }
    return render(request, "dashboard/members.html", context, status=400 if request.method == "POST" else 200)


@require_POST
@tenant_view(p.MANAGE_MEMBERS)
def member_role(request, membership_id):
    target = _target(request, membership_id)
    form = RoleChangeForm(request.POST, roles=p.assignable_roles(request.membership.role))
    if not _may_manage(request, target) or not form.is_valid():
        messages.error(request, _("You cannot give that role."))
        return redirect("dashboard:members")
    try:
        membership_role_change(membership=target, role=form.cleaned_data["role"])
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("Role updated."))
    return redirect("dashboard:members")


@require_POST
@tenant_view(p.MANAGE_MEMBERS)
def member_remove(request, membership_id):
    target = _target(request, membership_id)
    if not _may_manage(request, target):
        messages.error(request, _("Only an owner can remove an owner."))
        return redirect("dashboard:members")
    try:
        membership_remove(membership=target)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("%(email)s was removed.") % {"email": target.user.email})
    return redirect("dashboard:members")


@require_POST
@tenant_view(p.MANAGE_MEMBERS)
def invitation_cancel(request, invitation_id):
    invitation = invitation_get(tenant=request.tenant, invitation_id=invitation_id)
    if invitation is None:
        raise NotFound("No such invitation.")
    invitation_revoke(invitation=invitation)
    messages.success(request, _("Invitation revoked."))
    return redirect("dashboard:members")
