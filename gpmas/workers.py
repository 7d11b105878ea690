"""Worker liveness for /healthz: each worker process refreshes a short-lived key in Redis."""

from __future__ import annotations

import contextlib
import logging
import threading
import time

import redis

from reliability import redis as project_redis

log = logging.getLogger(__name__)
HEARTBEAT_EVERY_SECONDS = 10
SEEN_FOR_SECONDS = 30


def _key(hostname: str) -> str:
    return project_redis.key("worker", hostname)


def beat(hostname: str) -> None:
    project_redis.client().set(_key(hostname), time.time(), ex=SEEN_FOR_SECONDS)


def forget(hostname: str) -> None:
    with contextlib.suppress(redis.RedisError):
        project_redis.client().delete(_key(hostname))


def start_heartbeat(hostname: str) -> threading.Thread:
    def loop() -> None:
        while True:
            try:
                beat(hostname)
            except redis.RedisError as exc:  # Redis restarting: keep trying
                log.warning("worker heartbeat failed: %s", exc)
            time.sleep(HEARTBEAT_EVERY_SECONDS)

    thread = threading.Thread(target=loop, name="gpmas-heartbeat", daemon=True)
    thread.start()
    return thread


def workers_seen() -> list[str]:
    prefix = _key("")
    keys = project_redis.client().scan_iter(match=f"{prefix}*", count=500)
    return sorted(key.decode()[len(prefix) :] for key in keys)
