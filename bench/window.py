"""The clock of the fan-out benchmark: one contestant's wall time, the CPU time the contestant
spent (bench/cpu.py) and the CPU time the whole machine spent meanwhile."""

from __future__ import annotations

import time

from bench.cpu import ContestantCpu
from bench.stack import machine_cpu_seconds


class Window:
    """The clocked part of one contestant's run (Linux for the CPU figures)."""

    def __init__(self, sink_pids: list[int]) -> None:
        from django.conf import settings

        self.cpu = ContestantCpu(settings.REDIS_URL, sinks=sink_pids)

    def __enter__(self) -> Window:
        self.machine = machine_cpu_seconds()
        self.cpu.start()
        self.started = time.time()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.time() - self.started
        self.own_used = self.cpu.stop()
        after = machine_cpu_seconds()
        self.machine_used = None if self.machine is None else after - self.machine

    def figures(self, count: int, seconds: float | None = None) -> dict:
        """``seconds``: the run's own measure of its span, when it has a better one."""
        seconds = seconds or self.seconds
        figures = {"seconds": seconds, "own_ms_per_message": 1000 * self.own_used / count}
        for part, used in self.cpu.parts.items():  # the contestant's processes, PostgreSQL, Redis
            figures[f"{part}_ms_per_message"] = 1000 * used / count
        if self.machine_used is not None:
            # Everything the machine did per message, sinks included: on two cores, the bound.
            figures["machine_ms_per_message"] = 1000 * self.machine_used / count
        return figures
