"""`Authorization: Bearer <api key>`: resolves the key, and through it the tenant, once per request."""

from datetime import timedelta

from django.utils import timezone
from rest_framework import authentication, exceptions

from portal.logs import log_tenant
from tenants.models import ApiKey

LAST_USED_RESOLUTION = timedelta(seconds=60)


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1").strip()
        if not header:
            return None
        scheme, _, raw_key = header.partition(" ")
        if scheme.lower() != self.keyword.lower() or not raw_key.strip():
            raise exceptions.AuthenticationFailed("Use 'Authorization: Bearer <api key>'.")
        return (None, self.key_resolve(raw_key.strip()))

    def key_resolve(self, raw_key: str) -> ApiKey:
        """The live key for a raw key, or 401 (keys are printable ASCII: anything else is unknown, never a query)."""
        if not raw_key.isascii() or not raw_key.isprintable():
            raise exceptions.AuthenticationFailed("Unknown API key.")
        try:
            key = ApiKey.objects.get_from_key(raw_key)
        except ApiKey.DoesNotExist:
            raise exceptions.AuthenticationFailed("Unknown API key.") from None
        if key.has_expired or key.revoked:
            raise exceptions.AuthenticationFailed("This API key is revoked or expired.")
        _touch(key)
        log_tenant(key.tenant_id)
        return key

    def authenticate_header(self, request) -> str:
        return self.keyword


def _touch(key: ApiKey) -> None:
    """Record last use at most once a minute, so reads do not turn into writes."""
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
