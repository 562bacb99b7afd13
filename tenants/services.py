"""Writes: tenants, memberships and API keys."""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils.text import slugify

from billing.services import account_ensure
from tenants.models import ApiKey, Membership, Tenant


@transaction.atomic
def tenant_create(*, slug: str, name: str = "", owner=None) -> Tenant:
    tenant = Tenant.objects.create(slug=slugify(slug) or slug, name=name or slug)
    account_ensure(tenant=tenant)
    if owner is not None:
        Membership.objects.create(tenant=tenant, user=owner, role=Membership.Role.OWNER)
    return tenant


def user_get_or_create(*, email: str):
    """Find a user by email or create one without a usable password (they set it via reset)."""
    User = get_user_model()
    user = User.objects.filter(email__iexact=email).first()
    if user is None:
        user = User(username=email[:150], email=email)
        user.set_unusable_password()
        user.save()
    return user


def membership_set(*, tenant: Tenant, user, role: str) -> Membership:
    membership, created = Membership.objects.get_or_create(tenant=tenant, user=user, defaults={"role": role})
    if not created and membership.role != role:
        membership.role = role
        membership.save(update_fields=["role"])
    return membership


def api_key_create(*, tenant: Tenant, name: str, created_by=None, expiry_date: datetime | None = None) -> tuple[ApiKey, str]:
    """Returns the key row and the raw key; the raw key is never stored and cannot be shown again."""
    key, raw = ApiKey.objects.create_key(name=name, tenant=tenant, created_by=created_by, expiry_date=expiry_date)
    return key, raw


def api_key_revoke(*, key: ApiKey) -> ApiKey:
    if not key.revoked:
        key.revoked = True
        key.save(update_fields=["revoked"])
    return key
