"""Base API view: the tenant is resolved and authorized here, once; throttles per key."""

from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from tenants.models import ApiKey, Tenant


class KeyRateThrottle(SimpleRateThrottle):
    """Per API key; `scope` chooses the rate (submit or read)."""

    def get_cache_key(self, request, view):
        if not isinstance(request.auth, ApiKey):
            return None
        return f"throttle_{self.scope}_{request.auth.pk}"


class SubmitThrottle(KeyRateThrottle):
    scope = "submit"


class ReadThrottle(KeyRateThrottle):
    scope = "read"


class TenantApi(APIView):
    """Every tenant endpoint derives from this; `self.tenant` is the caller's tenant."""

    tenant: Tenant
    api_key: ApiKey

    def get_throttles(self):
        if self.request.method in ("GET", "HEAD", "OPTIONS"):
            return [ReadThrottle()]
        return [SubmitThrottle()]

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        self.api_key = request.auth
        self.tenant = request.auth.tenant
