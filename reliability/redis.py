"""The project's own Redis connection and key names (everything under REDIS_KEY_PREFIX)."""

from functools import cache

import redis
from django.conf import settings


@cache
def client() -> redis.Redis:
    # redis-py's pool notices a fork and reconnects, so one client per process is safe with
    # Celery's prefork workers.
    return redis.Redis.from_url(
        settings.REDIS_URL,
        socket_timeout=settings.REDIS_SOCKET_TIMEOUT,
        socket_connect_timeout=settings.REDIS_SOCKET_TIMEOUT,
        health_check_interval=30,
    )


def key(*parts: object) -> str:
    return ":".join([settings.REDIS_KEY_PREFIX, *map(str, parts)])
