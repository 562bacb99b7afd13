"""Base API view: the tenant is resolved and authorized here, once; throttles per key, told in headers."""

import math

from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from tenants.models import ApiKey, Tenant


class KeyRateThrottle(SimpleRateThrottle):
    """Per API key; `scope` chooses the rate (submit or read)."""

    def get_cache_key(self, request, view):
        if not isinstance(request.auth, ApiKey):
            return None
        return f"throttle_{self.scope}_{request.auth.pk}"

    def rate_headers(self) -> dict[str, str]:
        """This key's window as response headers: the IETF RateLimit fields and OpenAI's x-ratelimit-*."""
        history = getattr(self, "history", None)
        if history is None or not self.num_requests:
            return {}
        remaining = max(0, self.num_requests - len(history))
        reset = max(0, math.ceil(history[-1] + self.duration - self.now)) if history else 0
        return {
            "RateLimit-Limit": str(self.num_requests),
            "RateLimit-Remaining": str(remaining),
            "RateLimit-Reset": str(reset),
            "RateLimit-Policy": f"{self.num_requests};w={self.duration}",
            "x-ratelimit-limit-requests": str(self.num_requests),
            "x-ratelimit-remaining-requests": str(remaining),
            "x-ratelimit-reset-requests": f"{reset}s",
        }


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
