"""Base API view: the tenant is resolved and authorized here, once; throttles per key, told in headers."""

from rest_framework.views import APIView

from tenants.models import ApiKey, Tenant
from tenants.throttling import SlidingLogThrottle


class KeyRateThrottle(SlidingLogThrottle):
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
        throttle = ReadThrottle() if self.request.method in ("GET", "HEAD", "OPTIONS") else SubmitThrottle()
        self.throttles_checked = [throttle]
        return self.throttles_checked

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        for throttle in getattr(self, "throttles_checked", ()):
            for name, value in throttle.rate_headers().items():
                response[name] = value
        return response

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        self.api_key = request.auth
        self.tenant = request.auth.tenant
