"""One Redis connection pool per process and server, shared by the cache and django-q2's broker.

Django's RedisCache makes a client, and with it a connection pool, per cache object; under ASGI a request
gets cache objects of its own (they live in the request's context), and django-q2 makes a broker (a
client and a pool) per `async_task`. Each request then paid a TCP connect and a HELLO to Redis. Here every
`from_url` of the same server and options answers the same pool: a request borrows a connection and
returns it. redis-py's pool is thread-safe and, after a fork, starts over with connections of its own.
"""

from __future__ import annotations

import threading

import redis
from django_q.brokers.redis_broker import Redis as RedisBroker
from django_q.conf import Conf


class SharedConnectionPool(redis.ConnectionPool):
    """`CACHES[...]["OPTIONS"]["pool_class"]`: `from_url` gives this process's pool for the URL and options."""

    _shared: dict[tuple, SharedConnectionPool] = {}
    _lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, **kwargs) -> SharedConnectionPool:
        key = (url, tuple(sorted((name, repr(value)) for name, value in kwargs.items())))
        with cls._lock:
            pool = cls._shared.get(key)
            if pool is None:
                pool = cls._shared[key] = super().from_url(url, **kwargs)
            return pool


class PooledRedisBroker(RedisBroker):
    """django-q2's Redis broker (`Q_CLUSTER["broker_class"]`) on the process's shared pool for Q_CLUSTER["redis"]."""

    @staticmethod
    def get_connection(list_key: str | None = None) -> redis.Redis:
        if not isinstance(Conf.REDIS, str):
            return RedisBroker.get_connection(list_key)
        return redis.Redis(connection_pool=SharedConnectionPool.from_url(Conf.REDIS))
