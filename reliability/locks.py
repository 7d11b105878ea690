"""Distributed locks on Redis (python-redis-lock), always expiring and auto-renewed.

A lock cuts contention; it never carries correctness alone. The data it guards is also guarded
by row locks, conditional UPDATEs and constraints, because a lock can be lost silently (its
renewal thread dies, Redis restarts) while its holder keeps running.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import redis_lock

from reliability import redis as project_redis

log = logging.getLogger(__name__)

DEFAULT_EXPIRE_SECONDS = 30


class LockBusy(Exception):
    """Someone else holds the lock and it did not come free within the wait."""

    def __init__(self, name: str, waited: float) -> None:
        self.name = name
        self.waited = waited
        super().__init__(f"lock {name!r} is busy (waited {waited:g}s); try again")


def lock_name(name: str) -> str:
    return project_redis.key("lock", name)


@contextmanager
def hold(name: str, *, wait: float = 0, expire: int = DEFAULT_EXPIRE_SECONDS) -> Iterator[None]:
    """Hold lock ``name`` for the block, waiting at most ``wait`` seconds for it.

    Raises LockBusy when it stays taken, and redis.RedisError when Redis is unreachable: the
    caller decides whether to go on without it (web requests do; drains skip their tick).
    """
    lock = redis_lock.Lock(
        project_redis.client(), lock_name(name), expire=expire, auto_renewal=True
    )
    if wait > 0:
        acquired = lock.acquire(blocking=True, timeout=wait)
    else:
        acquired = lock.acquire(blocking=False)
    if not acquired:
        raise LockBusy(name, wait)
    try:
        yield
    finally:
        try:
            lock.release()
        except redis_lock.NotAcquired:
            log.warning("lock %r expired or was lost before release", name)
        except Exception:  # Redis gone: the lock expires by itself
            log.warning("could not release lock %r", name, exc_info=True)
