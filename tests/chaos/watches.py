"""What a chaos scenario watches while it runs: every call the emulators receive, with its time
(``CallLog``), and the intervals a provider's circuit was open (``CircuitWatch``)."""

from __future__ import annotations

import threading
import time

import redis
from django.conf import settings

from sandbox import Sandbox
from tests.chaos.harness import STACK_ENV


class CallLog:
    """Every call an emulator receives, with the time it arrived (epoch seconds)."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.calls: list[tuple[str, float]] = []
        self._lock = threading.Lock()
        self._inbox = sandbox.inbox
        self._original = sandbox.inbox.record_call

    def _record(self, provider: str) -> int:
        with self._lock:
            self.calls.append((provider, time.time()))
        return self._original(provider)

    def __enter__(self) -> CallLog:
        self._inbox.record_call = self._record  # an instance attribute shadows the method
        return self

    def __exit__(self, *exc: object) -> None:
        del self._inbox.record_call

    def between(self, start: float, end: float, provider: str | None = None) -> int:
        with self._lock:
            return sum(
                1
                for name, at in self.calls
                if start < at < end and (provider is None or name == provider)
            )


class CircuitWatch:
    """Samples one provider's circuit in the stack's Redis and keeps every open interval.

    The state script stores ``open_until`` and ``times_opened``; the moment the circuit opened
    follows from them (``open_until - min(max_open, base_open * 2**(times_opened - 1))``).
    """

    def __init__(self, client: redis.Redis, provider_id: int) -> None:
        self.client = client
        self.key = f"{settings.REDIS_KEY_PREFIX}:provider:{provider_id}"
        self.base_open = float(STACK_ENV["GPMAS_BASE_OPEN_SECONDS"])
        self.max_open = float(STACK_ENV["GPMAS_MAX_OPEN_SECONDS"])
        self.intervals: set[tuple[float, float]] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            try:
                opened, until, times = self.client.hmget(
                    self.key, "opened", "open_until", "times_opened"
                )
            except redis.RedisError:
                continue
            if opened == b"1" and until and times:
                open_for = min(self.max_open, self.base_open * 2 ** (int(times) - 1))
                self.intervals.add((float(until) - open_for, float(until)))

    def __enter__(self) -> CircuitWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def open_windows(self) -> list[tuple[float, float]]:
        return sorted(self.intervals)
