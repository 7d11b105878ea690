"""A scripted day of outages and recoveries over three providers: no network, a driven clock.

The real ranking code and Redis state decide every send; only the providers' answers are
scripted. One message every 10 seconds, each tried down its ranking like the send path does, and
requeued with backoff when no provider takes it.
"""

import heapq
import math
import random
from collections import Counter, defaultdict

import pytest
from django.test import override_settings

from delivery import provider_state, ranking
from delivery.models import Provider
from reliability.retry import backoff_delay

HOUR = 3600
START = 1_800_000_000.0
SCRIPT = {
    # provider: [(from, to, outcome while failing)]
    "a": [(6 * HOUR, 8 * HOUR, "transient"), (15 * HOUR, 15.5 * HOUR, "unknown")],
    "b": [(12 * HOUR, 13 * HOUR, "rate_limited"), (15 * HOUR, 15.5 * HOUR, "transient")],
    "c": [(20 * HOUR, 21 * HOUR, "provider_error")],
}
WEIGHTS = {"a": 3, "b": 2, "c": 1}


def scripted_outcome(name: str, t: float) -> str:
    for start, end, outcome in SCRIPT[name]:
        if START + start <= t < START + end:
            return outcome
    return "accepted"


@pytest.fixture(scope="module")
def day():
    with override_settings(
        GPMAS_PENALTY_HALF_LIFE_SECONDS=60,
        GPMAS_OPEN_THRESHOLD=100,
        GPMAS_BASE_OPEN_SECONDS=30,
        GPMAS_MAX_OPEN_SECONDS=300,
        GPMAS_RATE_LIMIT_SECONDS=60,
    ):
        # Starts from empty provider state: the suite deletes its Redis keys after every test.
        return simulate_day()


def simulate_day() -> "Simulation":
    providers = [
        Provider(pk=700 + i, name=name, kind="console", weight=WEIGHTS[name])
        for i, name in enumerate(WEIGHTS)
    ]
    rng = random.Random(20261128)
    queue = [(START + i * 10, i, 0) for i in range(24 * HOUR // 10)]  # (due, message, attempt)
    heapq.heapify(queue)
    log = Simulation()
    while queue:
        due, message, attempt = heapq.heappop(queue)
        views = provider_state.read_views(providers, at=due)
        ordered, wait = ranking.order(providers, views, at=due, rng=rng.random)
        accepted_by = None
        for provider in ordered:
            grant = provider_state.reserve(provider, at=due)
            if not grant.ok:
                continue
            outcome = scripted_outcome(provider.name, due)
            log.call(provider.name, due, outcome)
            retry_after = 60 if outcome == "rate_limited" else None
            provider_state.record_outcome(
                provider, outcome, at=due, probe=grant.probe, retry_after=retry_after
            )
            if outcome == "accepted":
                accepted_by = provider.name
                break
        if accepted_by:
            log.delivered(message, accepted_by, due, attempt)
        else:
            delay = backoff_delay(attempt + 1, base=10, cap=300, rng=rng.random)
            retry_at = max(due + delay, wait or 0)
            heapq.heappush(queue, (retry_at, message, attempt + 1))
    return log


class Simulation:
    def __init__(self):
        self.calls = defaultdict(list)  # provider -> [(t, outcome)]
        self.deliveries = {}  # message -> (provider, t, attempts before)

    def call(self, name, t, outcome):
        self.calls[name].append((t, outcome))

    def delivered(self, message, name, t, attempt):
        assert message not in self.deliveries, "a message was delivered twice"
        self.deliveries[message] = (name, t, attempt)

    def share(self, name, start_hour, end_hour):
        window = [
            p
            for p, t, _ in self.deliveries.values()
            if START + start_hour * HOUR <= t < START + end_hour * HOUR
        ]
        return Counter(window)[name] / len(window)

    def calls_between(self, name, start_hour, end_hour):
        return [
            outcome
            for t, outcome in self.calls[name]
            if START + start_hour * HOUR <= t < START + end_hour * HOUR
        ]


def test_no_message_is_lost_or_delivered_twice(day):
    assert len(day.deliveries) == 24 * HOUR // 10


def test_healthy_hours_follow_the_weights(day):
    assert day.share("a", 0, 6) == pytest.approx(3 / 6, abs=0.04)
    assert day.share("b", 0, 6) == pytest.approx(2 / 6, abs=0.04)
    assert day.share("c", 0, 6) == pytest.approx(1 / 6, abs=0.04)


def test_a_down_provider_is_failed_over_in_the_same_send_and_then_left_alone(day):
    # Failover takes no time: while one provider is down, every message is delivered at its
    # first send, by another provider.
    during = [
        (p, attempt)
        for p, t, attempt in day.deliveries.values()
        if START + 6 * HOUR <= t < START + 8 * HOUR
    ]
    assert all(attempt == 0 for _, attempt in during)
    assert "a" not in {p for p, _ in during}
    # Of ~720 sends in those two hours, A sees the four failures that open its circuit, then
    # one failed probe per open period: 30, 60, 120 and 240 s, then 300 s each.
    probes = 4 + math.ceil((2 * HOUR - (30 + 60 + 120 + 240)) / 300)
    failed_calls = day.calls_between("a", 6, 8)
    assert 4 + 1 <= len(failed_calls) <= 4 + probes + 1
    assert len(failed_calls) / len(during) < 0.05


def test_a_recovered_provider_gets_its_share_back_within_minutes(day):
    back_at = min(
        t for t, outcome in day.calls["a"] if outcome == "accepted" and t >= START + 8 * HOUR
    )
    assert back_at - (START + 8 * HOUR) <= 300 + 10  # the longest open time, plus one message
    hourly = [round(day.share("a", h, h + 1), 2) for h in range(8, 11)]
    print("\nprovider a share by hour after recovery (8h, 9h, 10h):", hourly)
    assert day.share("a", 9, 10) == pytest.approx(3 / 6, abs=0.06)


def test_a_rate_limited_provider_is_skipped_until_its_retry_after(day):
    limited = day.calls_between("b", 12, 13)
    # One 429 per minute of Retry-After at most, instead of one per message.
    assert limited.count("rate_limited") <= 60 + 1
    assert day.share("b", 12.1, 13) < 0.05


def test_when_two_providers_are_down_the_third_carries_everything(day):
    assert day.share("c", 15.05, 15.5) > 0.95


def test_a_provider_with_an_auth_error_is_opened_at_once(day):
    failures = day.calls_between("c", 20, 21)
    assert failures[0] == "provider_error"
    assert day.share("c", 20.02, 21) < 0.03
