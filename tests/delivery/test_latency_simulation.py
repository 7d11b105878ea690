"""Latency curves over a driven clock: no network, the real ranking and Redis state.

Three providers of equal weight share a steady stream of 10 messages a second through 8 call
slots (two worker processes with four calls in flight each). Each scenario scripts how long one
provider takes per call; each call is reserved (counted in flight), takes its scripted time and
records its latency, as the send path does. Per minute the simulation reports each provider's
share and the messages completed against the messages that arrived; ``-s`` prints the tables.

- gradually: provider "a" slows from 20 ms to 2 s over ten minutes;
- spikes: provider "b" answers in 20 ms, but one call in 25 takes 3 s;
- alternating: provider "c" is slow (1.5 s) every other minute.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import Counter, deque
from dataclasses import dataclass, field

import pytest
from django.test import override_settings

from delivery import provider_state, ranking
from delivery.models import Provider

START = 1_800_000_000.0
MINUTES = 16
RATE = 10  # messages a second
SLOTS = 8
FAST = 0.02


def gradually(minute: float, rng: random.Random) -> float:
    return FAST + (2.0 - FAST) * min(1.0, max(0.0, (minute - 2) / 10))


def spikes(minute: float, rng: random.Random) -> float:
    return 3.0 if rng.random() < 1 / 25 else FAST


def alternating(minute: float, rng: random.Random) -> float:
    return 1.5 if int(minute) % 2 else FAST


@dataclass
class Minute:
    started: Counter = field(default_factory=Counter)
    arrived: int = 0
    completed: int = 0
    seconds: float = 0.0  # from arrival to the provider's answer, summed over the completed


@dataclass
class Run:
    minutes: list[Minute]

    def share(self, name: str, first: int, last: int) -> float:
        picked = sum((m.started for m in self.minutes[first:last]), Counter())
        return picked[name] / max(1, sum(picked.values()))

    def throughput(self, first: int, last: int) -> float:
        """Messages completed over messages arrived, in those minutes."""
        window = self.minutes[first:last]
        return sum(m.completed for m in window) / sum(m.arrived for m in window)

    def mean_seconds(self, first: int, last: int) -> float:
        """How long a message took, from arrival to its provider's answer, on average."""
        window = self.minutes[first:last]
        return sum(m.seconds for m in window) / max(1, sum(m.completed for m in window))

    def table(self, title: str) -> str:
        lines = [f"\n{title}", "min |    a    b    c | done/arrived | mean s/message"]
        for i, m in enumerate(self.minutes):
            total = max(1, sum(m.started.values()))
            shares = " ".join(f"{m.started[n] / total:4.0%}" for n in "abc")
            mean = m.seconds / max(1, m.completed)
            lines.append(f"{i:3d} | {shares} | {m.completed:4d}/{m.arrived} | {mean:.3f}")
        return "\n".join(lines)


def simulate(curves: dict[str, callable], seed: int = 1) -> Run:
    """Arrivals every 0.1 s, at most ``SLOTS`` calls at once, the rest queued in order."""
    providers = [
        Provider(pk=800 + i, name=n, kind="console", weight=1) for i, n in enumerate("abc")
    ]
    rng = random.Random(seed)
    run = Run([Minute() for _ in range(MINUTES)])
    events = [(START + i / RATE, i, "arrive", None) for i in range(MINUTES * 60 * RATE)]
    heapq.heapify(events)
    order = itertools.count(len(events))  # ties in time go in the order they were scheduled
    waiting: deque[float] = deque()
    free = SLOTS
    while events:
        at, _, kind, call = heapq.heappop(events)
        minute = run.minutes[min(int((at - START) // 60), MINUTES - 1)]
        if kind == "arrive":
            waiting.append(at)
            minute.arrived += 1
        else:
            provider, grant, seconds, arrived = call
            provider_state.record_outcome(
                provider, "accepted", at=at, call_id=grant.call_id, seconds_per_message=seconds
            )
            minute.completed += 1
            minute.seconds += at - arrived
            free += 1
        while free and waiting:
            arrived = waiting.popleft()
            provider, grant = start_call(providers, at, rng)
            curve = curves.get(provider.name, lambda m, r: FAST)
            seconds = curve((at - START) / 60, rng)
            done = (provider, grant, seconds, arrived)
            heapq.heappush(events, (at + seconds, next(order), "done", done))
            minute.started[provider.name] += 1
            free -= 1
    return run


def start_call(providers: list[Provider], at: float, rng: random.Random):
    views = provider_state.read_views(providers, at=at)
    ordered, _ = ranking.order(providers, views, at=at, rng=rng.random)
    for provider in ordered:
        grant = provider_state.reserve(provider, at=at)
        if grant.ok:
            return provider, grant
    raise AssertionError("no provider could take the message")


@pytest.fixture(autouse=True)
def settings_of_the_day():
    with override_settings(GPMAS_LATENCY_DECAY_SECONDS=10, GPMAS_PROBE_TIMEOUT_SECONDS=30):
        yield


def test_a_provider_slowing_gradually_is_routed_around_and_the_stream_keeps_up():
    run = simulate({"a": gradually})
    print(run.table("a slows from 20 ms to 2 s between minutes 2 and 12"))
    assert run.share("a", 0, 2) == pytest.approx(1 / 3, abs=0.06)
    assert run.share("a", 12, MINUTES) < 0.05
    assert run.throughput(2, MINUTES - 1) >= 0.95
    assert run.mean_seconds(12, MINUTES) < 0.1  # against 2 s through "a"


def test_without_the_latency_factor_the_same_slowdown_clogs_the_slots(monkeypatch):
    """Control: with speed left out of the score, "a" keeps its third of the stream, and a
    message takes ten times longer on average."""
    monkeypatch.setattr(
        ranking,
        "speeds",
        lambda providers, views, at: dict.fromkeys([p.pk for p in providers], 1.0),
    )
    run = simulate({"a": gradually})
    print(run.table("control: the same day without the latency factor"))
    assert run.share("a", 12, MINUTES) > 0.2
    assert run.mean_seconds(12, MINUTES) > 0.5


def test_latency_spikes_cost_a_provider_share_but_not_the_streams_pace():
    run = simulate({"b": spikes})
    print(run.table("b: one call in 25 takes 3 s"))
    assert 0.02 < run.share("b", 2, MINUTES) < 1 / 3
    assert run.throughput(1, MINUTES - 1) >= 0.95


def test_a_provider_alternating_between_fast_and_slow_follows_it_minute_by_minute():
    run = simulate({"c": alternating})
    print(run.table("c: slow (1.5 s) every other minute"))
    slow_minutes = [run.share("c", m, m + 1) for m in range(3, MINUTES, 2)]
    fast_minutes = [run.share("c", m, m + 1) for m in range(2, MINUTES, 2)]
    assert max(slow_minutes) < 0.05
    # It wins part of its third back in each fast minute, as its first fast calls come back.
    assert min(fast_minutes) > 0.1 and sum(fast_minutes) / len(fast_minutes) > 0.15
    assert run.throughput(1, MINUTES - 1) >= 0.95
