"""Distributed locks on Redis (python-redis-lock), always expiring and auto-renewed.

A lock cuts contention; it never carries correctness alone. The data it guards is also guarded
by row locks, conditional UPDATEs and constraints, because a lock can be lost silently (its
renewal thread dies, Redis restarts) while its holder keeps running.
"""

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

import redis
import redis_lock
from django.conf import settings

from reliability import redis as project_redis

log = logging.getLogger(__name__)

# Renewed by the holder while it runs (auto_renewal), so this is how long a holder that died
# without releasing (kill -9) keeps everyone else waiting or answered "busy".
DEFAULT_EXPIRE_SECONDS = 10


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
    lock = _take(name, wait=wait, expire=expire)
    try:
        yield
    finally:
        _release(lock, name)


@contextmanager
def hold_if_available(name: str, *, wait: float | None = None) -> Iterator[bool]:
    """``hold`` for writes the database guards anyway (docs/architecture.md, "Locks"): when
    Redis is down the block runs without the lock (yielding False) instead of failing. A lock
    that stays busy still raises LockBusy, which views answer with 409 "busy, try again"."""
    wait = settings.GPMAS_LOCK_WAIT_SECONDS if wait is None else wait
    try:
        lock = _take(name, wait=wait, expire=DEFAULT_EXPIRE_SECONDS)
    except redis.RedisError as exc:
        log.warning("lock %r unavailable (%s); relying on database guards alone", name, exc)
        yield False
        return
    try:
        yield True
    finally:
        _release(lock, name)


def _take(name: str, *, wait: float, expire: int) -> redis_lock.Lock:
    lock = redis_lock.Lock(
        project_redis.client(), lock_name(name), expire=expire, auto_renewal=True
    )
    if not _acquire(lock, wait):
        raise LockBusy(name, wait)
    return lock


def _acquire(lock: redis_lock.Lock, wait: float) -> bool:
    """Wait at most ``wait`` seconds for the lock.

    python-redis-lock waits with one BLPOP of whole seconds: a timeout under a second would
    become "until the lock expires", and a BLPOP longer than the client's socket timeout fails as
    a Redis error. So the wait goes in one-second BLPOPs (woken at once by a release), and the
    last fraction of a second by polling.
    """
    deadline = time.monotonic() + wait
    while True:
        if lock.acquire(blocking=False):
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        if remaining >= 1:
            if lock.acquire(blocking=True, timeout=1):
                return True
        else:
            time.sleep(min(0.05, remaining))


def _release(lock: redis_lock.Lock, name: str) -> None:
    try:
        lock.release()
    except redis_lock.NotAcquired:
        log.warning("lock %r expired or was lost before release", name)
    except Exception:  # Redis gone: the lock expires by itself
        log.warning("could not release lock %r", name, exc_info=True)
