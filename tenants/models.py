"""Tenants (customer companies), their members and their API keys."""

import secrets

from django.conf import settings
from django.db import models
from rest_framework_api_key.models import AbstractAPIKey, BaseAPIKeyManager


def _webhook_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def webhook_secret_new() -> str:
    """A fresh signing secret for a tenant's webhooks."""
    return _webhook_secret()


class Tenant(models.Model):
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    webhook_secret = models.CharField(max_length=100, default=_webhook_secret)
    created_at = models.DateTimeField(auto_now_add=True)
    # Retention, in days after a transcription finishes (None: kept until deleted by hand); a daily task applies it.
    audio_retention_days = models.PositiveIntegerField(null=True, blank=True, default=30)
    transcript_retention_days = models.PositiveIntegerField(null=True, blank=True, default=None)

    def __str__(self) -> str:
        return f"{self.name} ({self.slug})"


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        ADMIN = "admin", "Admin"
        MEMBER = "member", "Member"
        BILLING = "billing", "Billing"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "user"], name="uniq_membership")]

    def __str__(self) -> str:
        return f"{self.user} in {self.tenant.slug} as {self.role}"


class ApiKeyManager(BaseAPIKeyManager):
    def get_usable_keys(self):
        return super().get_usable_keys().select_related("tenant")  # the tenant comes with the key: one query

    def get_from_key(self, key: str) -> "ApiKey":
        """The library's lookup (the usable key with the key's prefix, then its secret checked against the stored
        hash), with the rows read by one statement written once (tenants.key_lookup); DoesNotExist as there."""
        from tenants.key_lookup import usable_key_with_tenant

        prefix, _, _ = key.partition(".")
        api_key = usable_key_with_tenant(prefix)
        if api_key is None:
            raise self.model.DoesNotExist("ApiKey matching query does not exist.")
        if not api_key.is_valid(key):
            raise self.model.DoesNotExist("Key is not valid.")
        return api_key


class ApiKey(AbstractAPIKey):
    """A tenant-scoped key: shown once, stored hashed, prefix visible, revocable, may expire."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_used_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyManager()

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "API key"
        verbose_name_plural = "API keys"


def _invitation_token() -> str:
    return secrets.token_urlsafe(32)


class Invitation(models.Model):
    """An emailed invitation to join a tenant with a role; accepted once by a user with that email."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=16, choices=Membership.Role.choices, default=Membership.Role.MEMBER)
    token = models.CharField(max_length=64, unique=True, default=_invitation_token)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["tenant", "email"], name="invitation_tenant_email")]

    def __str__(self) -> str:
        return f"{self.email} to {self.tenant.slug} as {self.role}"

    @property
    def is_pending(self) -> bool:
        from django.utils import timezone

        return self.accepted_at is None and self.revoked_at is None and self.expires_at > timezone.now()
