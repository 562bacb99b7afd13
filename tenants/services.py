"""Writes: tenants, memberships and API keys."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from portal.errors import Conflict, InvalidRequest
from tenants.models import ApiKey, Invitation, Membership, Tenant


@transaction.atomic
def tenant_create(*, slug: str, name: str = "", owner=None) -> Tenant:
    tenant = Tenant.objects.create(slug=slugify(slug) or slug, name=name or slug)  # billing opens its account
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


def api_key_create(
    *, tenant: Tenant, name: str, created_by=None, expiry_date: datetime | None = None
) -> tuple[ApiKey, str]:
    """Returns the key row and the raw key; the raw key is never stored and cannot be shown again."""
    key, raw = ApiKey.objects.create_key(name=name, tenant=tenant, created_by=created_by, expiry_date=expiry_date)
    return key, raw


def webhook_secret_rotate(*, tenant: Tenant) -> str:
    """A new webhook signing secret for the tenant; webhooks sent from now on are signed with it."""
    from tenants.models import webhook_secret_new

    tenant.webhook_secret = webhook_secret_new()
    tenant.save(update_fields=["webhook_secret"])
    return tenant.webhook_secret


def api_key_revoke(*, key: ApiKey) -> ApiKey:
    if not key.revoked:
        key.revoked = True
        key.save(update_fields=["revoked"])
    return key


def membership_remove(*, membership: Membership) -> None:
    """Remove a member; the last owner of a tenant cannot be removed."""
    with transaction.atomic():
        if membership.role == Membership.Role.OWNER:
            owners = Membership.objects.select_for_update().filter(
                tenant_id=membership.tenant_id, role=Membership.Role.OWNER
            )
            if owners.count() <= 1:
                raise Conflict("A workspace must keep at least one owner.")
        membership.delete()


def membership_role_change(*, membership: Membership, role: str) -> Membership:
    """Change a member's role; the last owner cannot be demoted."""
    if role not in Membership.Role.values:
        raise InvalidRequest(f"Unknown role {role!r}.")
    with transaction.atomic():
        if membership.role == Membership.Role.OWNER and role != Membership.Role.OWNER:
            owners = Membership.objects.select_for_update().filter(
                tenant_id=membership.tenant_id, role=Membership.Role.OWNER
            )
            if owners.count() <= 1:
                raise Conflict("A workspace must keep at least one owner.")
        if membership.role != role:
            membership.role = role
            membership.save(update_fields=["role"])
    return membership


def invitation_create(*, tenant: Tenant, email: str, role: str, invited_by=None, valid_days: int = 14) -> Invitation:
    """A new invitation; an earlier pending invitation of the same email to the tenant is revoked."""
    email = email.strip().lower()
    if role not in Membership.Role.values:
        raise InvalidRequest(f"Unknown role {role!r}.")
    if Membership.objects.filter(tenant=tenant, user__email__iexact=email).exists():
        raise Conflict(f"{email} is already a member of this workspace.")
    now = timezone.now()
    with transaction.atomic():
        Invitation.objects.filter(tenant=tenant, email__iexact=email, accepted_at=None, revoked_at=None).update(
            revoked_at=now
        )
        return Invitation.objects.create(
            tenant=tenant, email=email, role=role, invited_by=invited_by, expires_at=now + timedelta(days=valid_days)
        )


def invitation_revoke(*, invitation: Invitation) -> Invitation:
    if invitation.revoked_at is None and invitation.accepted_at is None:
        invitation.revoked_at = timezone.now()
        invitation.save(update_fields=["revoked_at"])
    return invitation


def invitation_accept(*, invitation: Invitation, user) -> Membership:
    """Join the invitation's tenant with its role. The user's email must be the invited one."""
    with transaction.atomic():
        invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
        if not invitation.is_pending:
            raise InvalidRequest("This invitation has expired, was revoked or was already used.")
        if (user.email or "").strip().lower() != invitation.email.lower():
            raise InvalidRequest(
                f"This invitation was sent to {invitation.email}; sign in with that email address to accept it."
            )
        membership, created = Membership.objects.get_or_create(
            tenant=invitation.tenant, user=user, defaults={"role": invitation.role}
        )
        invitation.accepted_at = timezone.now()
        invitation.accepted_by = user
        invitation.save(update_fields=["accepted_at", "accepted_by"])
    return membership


def user_password_set(*, user, password: str) -> None:
    """Set a password chosen by the operator (validated like a signup's) and count the email as verified,
    so the owner can sign in at once. Raises django's ValidationError for a password the validators refuse."""
    from allauth.account.models import EmailAddress
    from django.contrib.auth.password_validation import validate_password

    validate_password(password, user=user)
    user.set_password(password)
    user.save(update_fields=["password"])
    EmailAddress.objects.update_or_create(
        user=user, email__iexact=user.email, defaults={"email": user.email, "verified": True, "primary": True}
    )


MAX_RETENTION_DAYS = 36_500


def tenant_retention_set(*, tenant: Tenant, audio_days: int | None, transcript_days: int | None) -> Tenant:
    """How long finished transcriptions keep their audio and their transcript (None: until deleted by hand)."""
    from portal.errors import InvalidRequest

    for label, days in (("Audio", audio_days), ("Transcript", transcript_days)):
        if days is not None and not (1 <= days <= MAX_RETENTION_DAYS):
            raise InvalidRequest(f"{label} retention must be 1 to {MAX_RETENTION_DAYS} days, or empty for never.")
    tenant.audio_retention_days = audio_days
    tenant.transcript_retention_days = transcript_days
    tenant.save(update_fields=["audio_retention_days", "transcript_retention_days"])
    return tenant
