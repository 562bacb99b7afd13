"""API permission: the request carries a valid tenant API key."""

from rest_framework.permissions import BasePermission

from tenants.models import ApiKey


class HasTenantApiKey(BasePermission):
    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, ApiKey)
