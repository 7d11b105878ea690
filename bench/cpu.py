"""CPU time a contestant spends, from Linux's /proc: its process tree (children it has reaped
included, through cutime/cstime), less the sinks it talks to, plus the PostgreSQL server and the
Redis server it uses. Shared servers count everything they do meanwhile, so measure on an
otherwise quiet machine."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def process_seconds(pid: int) -> float:
    """utime + stime + cutime + cstime of one process (0 when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / TICK  # fields 14 to 17


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):  # the thread ended meanwhile
            found += [int(child) for child in (task / "children").read_text().split()]
    return found


def tree_seconds(pid: int, *, excluding: frozenset[int] = frozenset()) -> float:
    """A process and its descendants, leaving out the subtrees rooted at ``excluding`` (whose
    time is subtracted from the parent only once they are reaped, so keep them alive)."""
    if pid in excluding:
        return 0.0
    return process_seconds(pid) + sum(
        tree_seconds(child, excluding=excluding) for child in children(pid)
    )


def named_seconds(name: str) -> float:
    """Every process whose command name is ``name`` (the PostgreSQL server: the postmaster's
    cutime holds the backends that have exited)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if text[text.index("(") + 1 : text.rindex(")")] == name:
            total += process_seconds(int(stat.parent.name))
    return total


def redis_seconds(url: str) -> float:
    """The Redis server's own account of its CPU time (the server may be anyone's process)."""
    import redis

    info = redis.Redis.from_url(url).info("cpu")
    return sum(float(info[key]) for key in ("used_cpu_sys", "used_cpu_user"))


class ContestantCpu:
    """CPU seconds between ``start()`` and ``stop()``: this process's tree without the sinks,
    plus PostgreSQL and Redis; ``parts`` has each of the three."""

    def __init__(self, redis_url: str, *, sinks: list[int]) -> None:
        self.redis_url = redis_url
        self.sinks = frozenset(sinks)

    def _now(self) -> dict[str, float]:
        return {
            "processes": tree_seconds(os.getpid(), excluding=self.sinks),
            "postgresql": named_seconds("postgres"),
            "redis": redis_seconds(self.redis_url),
        }

    def start(self) -> None:
        self.started = self._now()

    def stop(self) -> float:
        now = self._now()
        self.parts = {name: now[name] - self.started[name] for name in now}
        return sum(self.parts.values())
