"""The clock of the fan-out benchmark: one contestant's wall time, and the CPU time the sink and
the whole machine spent meanwhile."""

from __future__ import annotations

import time

from bench.processes import sandbox_cpu_seconds
from bench.stack import machine_cpu_seconds


class Window:
    """The clocked part of one contestant's run: its wall time, and the CPU time the sink and
    the whole machine spent meanwhile (Linux; elsewhere only the wall time)."""

    def __enter__(self) -> Window:
        self.sink, self.machine = sandbox_cpu_seconds(), machine_cpu_seconds()
        self.started = time.time()
        return self

    def __exit__(self, *exc) -> None:
        self.sink_used = _used(self.sink, sandbox_cpu_seconds())
        self.machine_used = _used(self.machine, machine_cpu_seconds())
        self.seconds = time.time() - self.started

    def figures(self, count: int, seconds: float | None = None) -> dict:
        """``seconds``: the run's own measure of its span, when it has a better one."""
        seconds = seconds or self.seconds
        figures = {"seconds": seconds}
        if self.sink_used is not None:
            # What one message costs the sink, and how busy the contestant kept its one thread.
            figures["sink_ms_per_message"] = 1000 * self.sink_used / count
            figures["sink_busy"] = self.sink_used / seconds
        if self.machine_used is not None:
            # Everything the machine did per message, sink included: on two cores, the bound.
            figures["machine_ms_per_message"] = 1000 * self.machine_used / count
        return figures


def _used(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else after - before
