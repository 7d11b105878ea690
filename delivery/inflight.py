"""Provider calls in flight in one worker process: up to ``GPMAS_CALLS_IN_FLIGHT`` at once.

Only the calls run on the slots' threads, each with adapters of its own (``delivery.connections``);
ranking, reservations and database writes stay with the batch that started them. So a slow
provider's call holds one slot, not the process. A batch with nothing left to start whose last
calls are still running after ``HAND_OVER_AFTER_SECONDS`` is handed over to a finishing thread
(``hand_over``): the worker takes its next batch instead of waiting for the slowest call of the
last one. Slots are counted
for the whole process, so batches finishing and starting never exceed the bound between them.
With one slot the call runs inline, on the caller's thread, and nothing is handed over.
"""

from __future__ import annotations

import concurrent.futures as futures
import logging
import math
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Protocol

from django.conf import settings
from django.db import close_old_connections

log = logging.getLogger(__name__)
# A batch waits this long for its last calls before handing them over. A call with no latency
# (a local relay, an emulator) ends within it and is recorded on the worker's own thread and
# connection; one to a real provider (tens of ms and up) is handed over, so the process's free
# slots serve its next batch instead of idling through the last calls of this one. At 0.25 s,
# longer than an SMTP call of 4 messages at 50 ms, the connections were in a call 93 % of the
# time in the latency benchmark; handed over at once, 95 % (README, Performance 8).
HAND_OVER_AFTER_SECONDS = 0.02
POLL_SECONDS = 0.05  # how often the finishing thread looks for new batches while waiting
_slots: CallSlots | None = None
_slots_lock = threading.Lock()


class Finishable(Protocol):
    running: dict[futures.Future, object]

    def step(self, future: futures.Future) -> None: ...

    def advance(self) -> None: ...

    def startable(self) -> bool: ...

    def close(self) -> None: ...


class CallSlots:
    def __init__(self, size: int) -> None:
        self.size = size
        self._free = threading.BoundedSemaphore(size)
        # Calls running per provider. While another provider can take the message, none may
        # hold more than half the slots, or its share of the weights if that is more (a
        # bulkhead): when one turns slow, the calls it already has run their course, and the
        # rest of the process keeps moving.
        self._by_provider: Counter[int] = Counter()
        self._count_lock = threading.Lock()
        self._pool = self._finisher = None
        if size > 1:
            self._pool = futures.ThreadPoolExecutor(size, thread_name_prefix="gpmas-call")
            self._finisher = Finisher()

    @property
    def can_hand_over(self) -> bool:
        return self._finisher is not None

    def take(self, *, wait: float = 0) -> bool:
        """Take a free slot (waiting up to ``wait`` seconds for one); False if none."""
        return self._free.acquire(timeout=wait) if wait else self._free.acquire(blocking=False)

    def give_back(self) -> None:
        """Return a slot taken for a call that was not started after all."""
        self._free.release()

    def full_for(self, provider_id: int, share: float) -> bool:
        """The provider holds as many slots as the bulkhead lets it hold, given its ``share``
        of the weights among the providers that can take the message."""
        limit = max(self.size // 2, math.ceil(self.size * share), 1)
        with self._count_lock:
            return self.size > 1 and self._by_provider[provider_id] >= limit

    def start(self, work: Callable[[], object], provider_id: int) -> futures.Future:
        """Run ``work`` in the slot taken for it; the slot is free again when it ends."""
        with self._count_lock:
            self._by_provider[provider_id] += 1

        def call() -> object:
            try:
                return work()
            finally:
                with self._count_lock:
                    self._by_provider[provider_id] -= 1
                self._free.release()

        if self._pool is not None:
            try:
                return self._pool.submit(call)
            except BaseException:  # the call never ran: its slot and count are still held
                with self._count_lock:
                    self._by_provider[provider_id] -= 1
                self._free.release()
                raise
        done: futures.Future = futures.Future()
        done.set_result(call())  # a time limit raised inside it propagates to the caller
        return done

    @staticmethod
    def wait_any(
        running: Iterable[futures.Future], timeout: float | None = None
    ) -> set[futures.Future]:
        finished, _ = futures.wait(list(running), timeout, return_when=futures.FIRST_COMPLETED)
        return finished

    def hand_over(self, batch: Finishable) -> None:
        """Let the finishing thread wait for the batch's calls, record them, and end it."""
        self._finisher.add(batch)

    def shutdown(self) -> None:
        """Wait for every call and handed-over batch to end (a worker process shutting down)."""
        if self._finisher is not None:
            self._finisher.stop()
        if self._pool is not None:
            self._pool.shutdown(wait=True)


class Finisher:
    """One thread per process that completes the handed-over batches, all of them at once: it
    waits for whichever of their calls ends first, records it, lets its batch start its next
    call (failover), and ends each batch when nothing of it is left. One thread, so one more
    database connection per process; all batches at once, so a slow call in one never delays
    the recording of another's."""

    def __init__(self) -> None:
        self._new: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def add(self, batch: Finishable) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="gpmas-finish", daemon=True)
            self._thread.start()
        self._new.put(batch)

    def stop(self, timeout: float | None = None) -> None:
        """Finish what was handed over, then stop."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        batches: list[Finishable] = []
        while batches or not (self._stopping.is_set() and self._new.empty()):
            batches += self._take_new(wait=not batches)
            close_old_connections()  # as around a task: drop a connection past its age
            running = {future: batch for batch in batches for future in batch.running}
            if running:
                for future in futures.wait(list(running), POLL_SECONDS, "FIRST_COMPLETED")[0]:
                    _guard(running[future].step, future)
            else:
                time.sleep(POLL_SECONDS)  # every slot is busy elsewhere: try again soon
            for batch in [b for b in batches if not b.running]:
                _guard(batch.advance)
                if not batch.running and not batch.startable():
                    _guard(batch.close)
                    batches.remove(batch)

    def _take_new(self, *, wait: bool) -> list[Finishable]:
        taken = []
        try:
            if wait:
                taken.append(self._new.get(timeout=POLL_SECONDS))
            while True:
                taken.append(self._new.get_nowait())
        except queue.Empty:
            return taken


def _guard(step, *args) -> None:
    try:
        step(*args)
    except Exception:  # its jobs' leases bring them back; the thread must go on
        log.exception("a handed-over batch failed")


def slots() -> CallSlots:
    """This process's slots, made on first use (after the worker forked: threads do not
    survive a fork), again if the setting changed."""
    global _slots
    with _slots_lock:
        if _slots is None or _slots.size != settings.GPMAS_CALLS_IN_FLIGHT:
            if _slots is not None:
                _slots.shutdown()
            _slots = CallSlots(settings.GPMAS_CALLS_IN_FLIGHT)
        return _slots


def shutdown() -> None:
    """Wait for this process's calls in flight and handed-over batches (worker shutdown)."""
    global _slots
    with _slots_lock:
        if _slots is not None:
            _slots.shutdown()
        _slots = None
