"""Dashboard writes: signup tenants, tenant switching, invitation emails."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation
from django.utils.text import slugify

from billing.services import tokens_grant
from dashboard.selectors import SESSION_TENANT_KEY
from portal.errors import NotFound
from tenants.models import Invitation, Membership, Tenant
from tenants.services import tenant_create


def _unique_slug(base: str) -> str:
    base = (slugify(base) or "team")[:40].strip("-") or "team"
    slug = base
    while Tenant.objects.filter(slug=slug).exists():
        slug = f"{base}-{secrets.token_hex(3)}"
    return slug


SIGNUP_GRANT_MEMO = "Welcome tokens granted at signup (SIGNUP_FREE_TOKENS)"


@transaction.atomic
def signup_tenant_create(*, user, company: str) -> Tenant:
    """A new signup's own tenant, with the user as its owner and SIGNUP_FREE_TOKENS to try the service with.

    The name defaults to the email's domain. The welcome tokens are an ordinary ledger grant with a memo.
    """
    name = (company or "").strip()[:200]
    if not name:
        domain = (user.email or "").partition("@")[2]
        name = domain or (user.email or "My workspace")
    tenant = tenant_create(
        slug=_unique_slug(name if slugify(name) else (user.email or "").partition("@")[0]), name=name, owner=user
    )
    if settings.SIGNUP_FREE_TOKENS > 0:
        tokens_grant(tenant=tenant, tokens=settings.SIGNUP_FREE_TOKENS, memo=SIGNUP_GRANT_MEMO, actor_label="signup")
    return tenant


def tenant_switch(*, request, tenant_id) -> Membership:
    """Make `tenant_id` the session's current tenant; only a tenant the user is a member of."""
    membership = None
    if str(tenant_id).isdigit():
        membership = (
            Membership.objects.select_related("tenant").filter(user=request.user, tenant_id=int(tenant_id)).first()
        )
    if membership is None:
        raise NotFound("No such workspace.")
    request.session[SESSION_TENANT_KEY] = membership.tenant_id
    request._dashboard_membership = membership
    return membership


def invitation_send(*, invitation: Invitation, base_url: str) -> None:
    """Email the invitation link (in the inviter's current language)."""
    link = base_url.rstrip("/") + reverse("dashboard:invitation_accept", args=[invitation.token])
    context = {
        "invitation": invitation,
        "link": link,
        "tenant": invitation.tenant,
        "language": translation.get_language(),
    }
    subject = render_to_string("dashboard/email/invitation_subject.txt", context).strip()
    body = render_to_string("dashboard/email/invitation_message.txt", context)
    send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [invitation.email])


def hotword_list_delete(*, hotword_list) -> None:
    hotword_list.delete()
