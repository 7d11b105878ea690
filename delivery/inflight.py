"""Provider calls in flight in one worker process: up to ``GPMAS_CALLS_IN_FLIGHT`` at once.

Only the calls run on these threads, each with adapters of its own (``delivery.connections``);
everything else a send does (ranking, reservations, database writes) stays on the worker's own
thread. So a slow provider holds one slot, not the process, and nothing else needs a lock.
With one slot the call runs inline, on the worker's thread, as a plain function call.
"""

from __future__ import annotations

import concurrent.futures as futures
import threading
from collections.abc import Callable, Iterable

from django.conf import settings

_slots: CallSlots | None = None
_slots_lock = threading.Lock()


class CallSlots:
    def __init__(self, size: int) -> None:
        self.size = size
        self._pool = None
        if size > 1:
            self._pool = futures.ThreadPoolExecutor(size, thread_name_prefix="gpmas-call")

    def start(self, work: Callable[[], object]) -> futures.Future:
        """Run ``work`` in a free slot; the caller keeps at most ``size`` in flight."""
        if self._pool is not None:
            return self._pool.submit(work)
        done: futures.Future = futures.Future()
        done.set_result(work())  # a time limit raised inside it propagates to the caller
        return done

    @staticmethod
    def wait_any(running: Iterable[futures.Future]) -> set[futures.Future]:
        finished, _ = futures.wait(list(running), return_when=futures.FIRST_COMPLETED)
        return finished

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


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
