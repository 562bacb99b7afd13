"""Per-key rate limits: DRF's sliding log of request times, kept atomically in Redis where the cache is Redis.

DRF's SimpleRateThrottle reads a key's history from the cache, trims it and writes it back whole: two round trips
per request, a pickled list that grows with the rate, and two concurrent requests of one key that both read the
same history both pass where only one may (issue 13: twenty clients of one key). On Redis the log is a sorted set
of request times that one Lua script trims, counts and adds to when under the limit: one round trip, atomic,
whatever the number of web processes. Elsewhere (LocMemCache: the embedded defaults, one web process) DRF's own
code runs under a process lock, which makes it exact there too.

Either way the throttle ends with `count` (requests in the window, this one included when allowed) and `oldest`
(the time of the oldest of them), from which the rate-limit headers and Retry-After are computed.
"""

from __future__ import annotations

import math
import os
import threading

from django.core.cache import cache as default_cache
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from rest_framework.throttling import SimpleRateThrottle

# KEYS[1]: the log. ARGV: now, window (s), limit, a unique member for this request.
# Returns {allowed (0/1), count, oldest score as a string}.
_SLIDING_LOG = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
local allowed = 0
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000))
  count = count + 1
  allowed = 1
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {allowed, count, oldest[2] or ARGV[1]}
"""

_local_lock = threading.Lock()
_scripts: dict[int, object] = {}


def _sliding_log_script(client):
    """The registered script for this client's connection pool (its SHA is computed once per pool)."""
    script = _scripts.get(id(client.connection_pool))
    if script is None:
        script = _scripts[id(client.connection_pool)] = client.register_script(_SLIDING_LOG)
    return script


class SlidingLogThrottle(SimpleRateThrottle):
    """SimpleRateThrottle with an atomic log on Redis; subclasses give `scope` and `get_cache_key`."""

    count = 0
    oldest: float | None = None

    def allow_request(self, request, view) -> bool:
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        cache = caches["default"] if self.cache is default_cache else self.cache
        if not isinstance(cache, RedisCache):
            with _local_lock:
                allowed = super().allow_request(request, view)
            self.count, self.oldest = len(self.history), (self.history[-1] if self.history else None)
            return allowed
        self.now = self.timer()
        # Not DRF's key: that one may still hold DRF's pickled history (a string), which the script cannot use.
        key = cache.make_and_validate_key(f"{self.key}:log")
        client = cache._cache.get_client(key, write=True)  # Django's RedisCacheClient: this server's redis-py client
        member = f"{self.now!r}:{os.urandom(6).hex()}"
        allowed, count, oldest = _sliding_log_script(client)(
            keys=[key], args=[repr(self.now), self.duration, self.num_requests, member], client=client
        )
        self.count, self.oldest = int(count), float(oldest)
        return bool(allowed)

    def wait(self) -> float | None:
        """Seconds until the next request may pass (DRF's formula, from the count and the oldest time)."""
        remaining = (
            self.duration - (self.now - self.oldest) if self.count and self.oldest is not None else self.duration
        )
        available = self.num_requests - self.count + 1
        if available <= 0:
            return None
        return remaining / float(available)

    def rate_headers(self) -> dict[str, str]:
        """This key's window as response headers: the IETF RateLimit fields and OpenAI's x-ratelimit-*."""
        if not self.num_requests or getattr(self, "now", None) is None:
            return {}
        remaining = max(0, self.num_requests - self.count)
        reset = max(0, math.ceil(self.oldest + self.duration - self.now)) if self.count and self.oldest else 0
        return {
            "RateLimit-Limit": str(self.num_requests),
            "RateLimit-Remaining": str(remaining),
            "RateLimit-Reset": str(reset),
            "RateLimit-Policy": f"{self.num_requests};w={self.duration}",
            "x-ratelimit-limit-requests": str(self.num_requests),
            "x-ratelimit-remaining-requests": str(remaining),
            "x-ratelimit-reset-requests": f"{reset}s",
        }
