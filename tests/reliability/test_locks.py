import threading
import time

import pytest

from reliability import locks
from reliability import redis as project_redis


def test_a_busy_lock_raises_lock_busy_after_a_short_wait():
    with locks.hold("busy"):
        started = time.monotonic()
        with pytest.raises(locks.LockBusy, match="busy"), locks.hold("busy", wait=0.3):
            pass
        assert 0.25 < time.monotonic() - started < 1.5


def test_a_wait_longer_than_the_redis_socket_timeout_is_still_lock_busy(settings):
    assert settings.REDIS_SOCKET_TIMEOUT < 3
    with locks.hold("busy"):
        started = time.monotonic()
        with pytest.raises(locks.LockBusy), locks.hold("busy", wait=3):
            pass
        assert 2.9 < time.monotonic() - started < 4.5


def test_a_waiter_gets_the_lock_as_soon_as_it_is_released():
    released_at = []
    holding = threading.Event()

    def holder():
        with locks.hold("handover"):
            holding.set()
            time.sleep(0.5)
            released_at.append(time.monotonic())

    thread = threading.Thread(target=holder)
    thread.start()
    holding.wait(5)
    with locks.hold("handover", wait=5):
        acquired_at = time.monotonic()
    thread.join()
    assert 0 <= acquired_at - released_at[0] < 0.3


def test_a_lock_expires_if_its_holder_dies(redis_client):
    with locks.hold("short", expire=1):
        pass
    redis_lock_key = f"lock:{locks.lock_name('crashed')}"
    redis_client.set(redis_lock_key, "someone-who-died", ex=1)  # a holder killed with the lock
    with locks.hold("crashed", wait=3):
        pass


def test_hold_if_available_goes_on_without_redis(settings):
    project_redis.client.cache_clear()
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    try:
        with locks.hold_if_available("anything", wait=1) as held:
            assert held is False
    finally:
        project_redis.client.cache_clear()


def test_hold_if_available_still_refuses_a_busy_lock():
    with (
        locks.hold("busy"),
        pytest.raises(locks.LockBusy),
        locks.hold_if_available("busy", wait=0.2),
    ):
        pass
