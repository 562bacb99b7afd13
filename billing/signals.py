"""Billing reacts to tenants (tenants never call billing): every new tenant gets its balance account."""

from __future__ import annotations

from django.db.models.signals import post_save
from django.dispatch import receiver

from billing.services import account_ensure
from tenants.models import Tenant


@receiver(post_save, sender=Tenant, dispatch_uid="billing_account_for_new_tenant")
def account_for_new_tenant(sender, instance: Tenant, created: bool, raw: bool = False, **kwargs) -> None:
    if created and not raw:
        account_ensure(tenant=instance)
