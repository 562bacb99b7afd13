"""The one place where a dashboard request gets its tenant, membership and permission check."""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.shortcuts import redirect, render

from dashboard.permissions import role_has_perm
from dashboard.selectors import membership_current
from portal.errors import NotFound
from portal.logs import log_tenant


def tenant_view(perm: str):
    """Decorate a view: sign-in required; request.tenant/membership set; `perm` required (403 otherwise).

    A portal.errors.NotFound raised by a selector inside the view becomes the 404 page, so
    another tenant's object looks exactly like a missing one.
    """

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            membership = membership_current(request=request)
            if membership is None:
                return redirect("dashboard:welcome")
            request.membership = membership
            request.tenant = membership.tenant
            log_tenant(membership.tenant_id)
            if not role_has_perm(membership.role, perm):
                return render(request, "dashboard/forbidden.html", status=403)
            try:
                return view(request, *args, **kwargs)
            except NotFound:
                return render(request, "404.html", status=404)

        return wrapper

    return decorator


def client_base_url(request) -> str:
    return f"{request.scheme}://{request.get_host()}"
