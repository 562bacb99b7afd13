"""Per-key rate limits (tenants.throttling): exact under concurrency, on Redis (one Lua script) and in-process."""

from __future__ import annotations

import os
import threading
import uuid

import pytest
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache

from tenants.throttling import SlidingLogThrottle

# A Redis database of the tests' own (the end-to-end test flushes 15; the scale-out test and the drills use 12, 13).
REDIS_URL = os.environ.get("TINGXIE_THROTTLE_REDIS_URL", "redis://127.0.0.1:6379/9")


class _Request:
    auth = None


@pytest.fixture
def redis_cache():
    prefix = f"tingxie-throttle-test-{uuid.uuid4().hex}"
    cache = RedisCache(REDIS_URL, {"KEY_PREFIX": prefix})
    yield cache
    client = cache._cache.get_client(write=True)
    keys = list(client.scan_iter(match=f"{prefix}:*"))
    if keys:
        client.delete(*keys)


def _throttle(cache, rate: str, *, now: list[float] | None = None, key: str = "throttle_test_key"):
    class Throttle(SlidingLogThrottle):
        scope = "test"
        THROTTLE_RATES = {"test": rate}

        def get_cache_key(self, request, view):
            return key

    Throttle.cache = cache
    if now is not None:
        Throttle.timer = lambda self: now[0]
    return Throttle


def _hammer(throttle_class, threads: int) -> list[bool]:
    barrier = threading.Barrier(threads)
    results: list[bool] = []

    def one():
        throttle = throttle_class()
        barrier.wait()
        results.append(throttle.allow_request(_Request(), None))

    workers = [threading.Thread(target=one) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return results


@pytest.mark.parametrize("backend", ["redis", "locmem"])
def test_concurrent_requests_of_one_key_pass_exactly_the_limit(backend, redis_cache):
    cache = redis_cache if backend == "redis" else LocMemCache(f"throttle-{uuid.uuid4().hex}", {})
    for round_ in range(5):  # the barrier lines 24 requests up; a read-then-write log lets extra ones through
        results = _hammer(_throttle(cache, "7/min", key=f"throttle_round_{round_}"), 24)
        assert results.count(True) == 7


def test_redis_log_headers_retry_after_and_window(redis_cache):
    now = [1_000_000.0]
    throttle_class = _throttle(redis_cache, "3/min", now=now)
    seen = []
    for step in range(4):
        now[0] = 1_000_000.0 + step
        throttle = throttle_class()
        allowed = throttle.allow_request(_Request(), None)
        seen.append((allowed, throttle.rate_headers()["RateLimit-Remaining"]))
    assert seen == [(True, "2"), (True, "1"), (True, "0"), (False, "0")]
    headers = throttle.rate_headers()
    # The oldest request (t=0) leaves the window at t=60; now is t=3.
    assert headers["RateLimit-Reset"] == "57" and headers["RateLimit-Policy"] == "3;w=60"
    assert throttle.wait() == pytest.approx(57.0)
    now[0] = 1_000_060.5  # the first request has left the window: one more may pass
    throttle = throttle_class()
    assert throttle.allow_request(_Request(), None)
    assert throttle.rate_headers()["RateLimit-Remaining"] == "0"
    client = redis_cache._cache.get_client(write=True)
    key = redis_cache.make_and_validate_key("throttle_test_key:log")
    assert client.zcard(key) == 3 and 0 < client.pttl(key) <= 60_000


def test_the_api_throttles_through_redis(api_client, settings):
    """The API's own throttle uses the Lua log when the cache is Redis: the 429 and its headers."""
    prefix = f"tingxie-throttle-api-{uuid.uuid4().hex}"
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL,
                                   "KEY_PREFIX": prefix}}  # fmt: skip
    from tenants.api import base

    original = base.ReadThrottle.THROTTLE_RATES
    base.ReadThrottle.THROTTLE_RATES = {**original, "read": "2/min"}
    try:
        responses = [api_client.get("/api/v1/balance") for _ in range(3)]
    finally:
        base.ReadThrottle.THROTTLE_RATES = original
        from django.core.cache import cache

        client = cache._cache.get_client(write=True)
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        assert keys, "the throttle wrote no log to Redis"
        client.delete(*keys)
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert [r["RateLimit-Remaining"] for r in responses] == ["1", "0", "0"]
    assert int(responses[2]["Retry-After"]) > 0


def test_a_history_left_by_drf_under_the_old_key_does_not_break_it(redis_cache):
    """Before this throttle, DRF's kept a pickled list under the key; it may still be there after an upgrade."""
    redis_cache.set("throttle_test_key", [1.0, 2.0], 60)
    throttle = _throttle(redis_cache, "3/min")()
    assert throttle.allow_request(_Request(), None)
    assert throttle.rate_headers()["RateLimit-Remaining"] == "2"
