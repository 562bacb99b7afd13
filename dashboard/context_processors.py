"""Template context: the current tenant and role of a signed-in user, the tenant switcher, permissions."""

from dashboard.permissions import ROLE_LABELS, role_perms
from dashboard.selectors import membership_current, memberships_for_switcher


def tenant(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"current_tenant": None, "current_membership": None, "perms_dashboard": frozenset()}
    membership = getattr(request, "membership", None) or membership_current(request=request)
    return {
        "current_tenant": membership.tenant if membership else None,
        "current_membership": membership,
        "current_role_label": ROLE_LABELS.get(membership.role, "") if membership else "",
        "perms_dashboard": role_perms(membership.role if membership else None),
        "switcher_memberships": lambda: memberships_for_switcher(user=user),
    }
