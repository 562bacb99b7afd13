"""Reads of tenants, members and keys."""

from django.db.models import QuerySet

from tenants.models import ApiKey, Membership, Tenant


def membership_list(*, tenant: Tenant) -> QuerySet[Membership]:
    return Membership.objects.filter(tenant=tenant).select_related("user").order_by("created_at")


def api_key_list(*, tenant: Tenant) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(tenant=tenant).order_by("-created")


def api_key_get(*, tenant: Tenant, key_id: str) -> ApiKey:
    return ApiKey.objects.get(tenant=tenant, pk=key_id)
