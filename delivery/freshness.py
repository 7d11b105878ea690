"""What the send path reads once and reuses, for how long, and why that is safe.

A cheap send (an SMTP message to a relay next door) would spend most of its time on round trips
if it read the halt switch and every provider's live state before each call and wrote each
success on its own. Three reuses cut that; their rules live here and nowhere else, and each
object belongs to one batch (``delivery.batch_send.BatchSend``), never to the process:

1. ``HaltCheck``: the write that records an acceptance reads the halt switch in the same round
   trip. That reading may serve as the check before the *next* provider call if that call comes
   within ``HALT_READING_SECONDS`` of the moment the write was *sent* (so a reading is never
   younger than its stamp), and for one call only; otherwise the switch is read afresh.
   The check must stay right before the call it allows (docs/invariants.md, "halt").
2. ``ProviderStateCache``: one read of every provider's state may serve the batch's next
   selections for ``PROVIDER_STATE_SECONDS``. Safe because the reservation after each selection
   re-checks atomically what must be exact (an open circuit, a rate-limit block, the quota, the
   probe slot); a penalty a few milliseconds old only skews one weighted draw. Any failure or
   refused reservation drops the cache, so a failing provider is seen at once.
3. ``DeferredSuccesses``: a plain success (not a probe) only halves a penalty and ends a failure
   streak, so it rides along with the batch's next Redis round trip instead of costing one of its
   own, and is written at the latest when the batch ends. Failures and probe outcomes are
   written at once: a penalty may lag on successes by milliseconds, never on failures.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace

import redis

from delivery import provider_state
from delivery.models import Provider
from delivery.provider_state import DeferredWrites
from delivery.provider_view import ProviderView
from reliability.halt import is_halted

HALT_READING_SECONDS = 0.005
PROVIDER_STATE_SECONDS = 0.02


class HaltCheck:
    """The halt switch as the send path reads it before every provider call (rule 1)."""

    def __init__(self) -> None:
        self._reading: tuple[bool, float] | None = None

    def halted(self) -> bool:
        reading, self._reading = self._reading, None
        if reading is not None and time.monotonic() - reading[1] < HALT_READING_SECONDS:
            return reading[0]
        return is_halted()

    def read_with(self, write: Callable[[], bool]) -> bool:
        """Run ``write``, a statement that reads the halt switch along with what it writes, and
        keep its reading for the next check. The reading is stamped with the time *before* the
        statement: the database reads the switch after that, while a stamp taken after the answer
        would make an old reading look new whenever the thread was held up on the way (a busy
        process, a lock wait), and a call could then start well after a halt committed."""
        taken_at = time.monotonic()
        halted = write()
        self._reading = (halted, taken_at)
        return halted


class DeferredSuccesses:
    """Successes waiting for the batch's next Redis round trip (rule 3)."""

    def __init__(self) -> None:
        self.pending: DeferredWrites = []

    def add(self, provider: Provider, *, at: float, **timing) -> None:
        """A success; ``timing`` is ``outcome_call``'s call_id, seconds_per_message, slow."""
        self.pending.append(provider_state.outcome_call(provider, "accepted", at=at, **timing))

    def write_now(self) -> bool:
        """Write what waits; False if Redis refused (a few halvings of a penalty are lost,
        nothing a later call won't redo)."""
        try:
            provider_state.write_deferred(self.pending)
        except redis.RedisError:
            return False
        return True


class ProviderStateCache:
    """The batch's providers' live state, read at most every ``PROVIDER_STATE_SECONDS`` (rule 2).

    Reads carry the deferred successes along, so they cost no round trip of their own. Between
    reads, the batch's own calls started and finished since are counted in the views' calls in
    flight, so a batch spreading calls over its slots sees the load it adds itself.
    """

    def __init__(self, providers: Sequence[Provider], successes: DeferredSuccesses) -> None:
        self.providers = list(providers)
        self._successes = successes
        self._views: dict[int, ProviderView] | None = None
        self._read_at = 0.0
        self._since_read: Counter[int] = Counter()  # own calls started minus finished

    def views(self, *, at: float) -> tuple[dict[int, ProviderView], bool]:
        """The state to rank on, and whether it was read just now (not reused)."""
        fresh = self._views is None or time.monotonic() - self._read_at >= PROVIDER_STATE_SECONDS
        if fresh:
            self._views = provider_state.read_views(
                self.providers, at=at, along=self._successes.pending
            )
            self._read_at = time.monotonic()
            self._since_read.clear()  # what Redis counts now includes them
        if not self._since_read:
            return self._views, fresh
        return {pk: self._with_own_calls(pk, view) for pk, view in self._views.items()}, fresh

    def _with_own_calls(self, pk: int, view: ProviderView) -> ProviderView:
        own = self._since_read.get(pk, 0)
        return replace(view, in_flight=max(0, view.in_flight + own)) if own else view

    def call_started(self, provider: Provider) -> None:
        self._since_read[provider.pk] += 1

    def call_finished(self, provider: Provider) -> None:
        self._since_read[provider.pk] -= 1

    def forget(self) -> None:
        self._views = None
