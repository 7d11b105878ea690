"""What the ranking benchmark (bench/ranking.py) measures with: the Redis round trips and SQL
queries of this process, timings in microseconds, and the time spent in each stage of the send
path."""

from __future__ import annotations

import statistics
import time
from collections import Counter, defaultdict
from contextlib import contextmanager


# --- Counting Redis round trips -----------------------------------------------------------------
class RedisCalls:
    """Redis traffic of this process while active: socket writes (each one request/response
    round trip: a command, a whole pipeline, a health-check PING, a reconnect's handshake) and
    the commands behind them by name (a pipeline as ``pipeline[HMGET,GET,...]``)."""

    def __init__(self) -> None:
        self.round_trips = 0
        self.commands: Counter[str] = Counter()

    @contextmanager
    def active(self):
        from redis.client import Pipeline, Redis
        from redis.connection import AbstractConnection

        real_send = AbstractConnection.send_packed_command
        real_execute = Redis.execute_command
        real_pipeline = Pipeline.execute
        calls = self

        def send_packed_command(connection, *args, **kwargs):
            calls.round_trips += 1
            return real_send(connection, *args, **kwargs)

        def execute_command(client, *args, **options):
            calls.commands[str(args[0]).upper()] += 1
            return real_execute(client, *args, **options)

        def execute(pipe, *args, **kwargs):
            names = ",".join(_compress([str(c[0][0]).upper() for c in pipe.command_stack]))
            calls.commands[f"pipeline[{names}]"] += 1
            return real_pipeline(pipe, *args, **kwargs)

        AbstractConnection.send_packed_command = send_packed_command
        Redis.execute_command = execute_command
        Pipeline.execute = execute
        try:
            yield self
        finally:
            AbstractConnection.send_packed_command = real_send
            Redis.execute_command = real_execute
            Pipeline.execute = real_pipeline


def _compress(names: list[str]) -> list[str]:
    """HMGET,GET,GET,HMGET,GET,GET -> 2x(HMGET,GET,GET) when the pattern repeats."""
    for size in range(1, len(names) // 2 + 1):
        if len(names) % size == 0 and names == names[:size] * (len(names) // size):
            return (
                [f"{len(names) // size}x({','.join(names[:size])})"]
                if size > 1
                else [f"{len(names)}x{names[0]}"]
            )
    return names


@contextmanager
def sql_queries():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    queries: list[dict] = []
    with CaptureQueriesContext(connection) as context:
        yield queries
    queries.extend(context.captured_queries)


def micro(seconds: list[float]) -> dict:
    ordered = sorted(seconds)

    def at(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1e6

    return {
        "mean_us": statistics.fmean(ordered) * 1e6,
        "p50_us": at(50),
        "p99_us": at(99),
        "max_us": ordered[-1] * 1e6,
    }


# --- Stages of the send path ------------------------------------------------------------------
class StageTimes:
    """Time spent in each stage of the send path, by wrapping the functions it calls (only the
    outermost call of a stage counts, should one stage's function call another's)."""

    STAGES = (
        ("halt check", "sending", "is_halted"),
        ("halt check", "freshness", "is_halted"),
        ("claim", "outbox", "claim_many"),
        ("selection", "ranking", "select"),
        ("quota reservation", "provider_state", "reserve"),
        ("record sent (SQL)", "outbox", "record_accepted"),
        ("record outcome (Redis)", "batch_send", "note_outcome"),
    )

    def __init__(self) -> None:
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self.calls: Counter[str] = Counter()
        self.depth: Counter[str] = Counter()

    def _wrap(self, stage: str, function):
        def timed(*args, **kwargs):
            if self.depth[stage]:
                return function(*args, **kwargs)
            self.depth[stage] += 1
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[stage] += time.perf_counter() - started
                self.calls[stage] += 1
                self.depth[stage] -= 1

        return timed

    @contextmanager
    def active(self):
        from delivery import batch_send, calls, freshness, outbox, provider_state, ranking, sending

        modules = {
            "sending": sending,
            "batch_send": batch_send,
            "freshness": freshness,
            "outbox": outbox,
            "ranking": ranking,
            "provider_state": provider_state,
        }
        saved = []
        for stage, module_name, name in self.STAGES:
            module = modules[module_name]
            if hasattr(module, name):
                saved.append((module, name, getattr(module, name)))
                setattr(module, name, self._wrap(stage, getattr(module, name)))
        real_adapter_for = calls.adapter_for
        stages = self

        class TimedAdapter:
            def __init__(self, adapter) -> None:
                self.adapter = adapter

            def send(self, message):
                return stages._wrap("provider call", self.adapter.send)(message)

            def send_batch(self, messages):
                return stages._wrap("provider call", self.adapter.send_batch)(messages)

            def __getattr__(self, name):  # max_batch, batch_key: the real adapter's
                return getattr(self.adapter, name)

        timed_adapter_for = lambda provider: TimedAdapter(real_adapter_for(provider))  # noqa: E731
        calls.adapter_for = timed_adapter_for
        try:
            yield self
        finally:
            calls.adapter_for = real_adapter_for
            for module, name, original in saved:
                setattr(module, name, original)
