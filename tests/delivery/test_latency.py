"""Latency in the ranking (docs/ranking.md, "Latency"): the estimate kept in Redis, the calls in
flight, slow calls as soft failures, and how selection weighs a slow provider down."""

import math
import random
from collections import Counter

import pytest

from delivery import provider_state, ranking
from delivery.models import Provider
from delivery.provider_view import CLOSED, ProviderView

T0 = 1_800_000_000.0
FAST, SLOW = 0.02, 1.5  # seconds per message: the operator case, 75x slower


@pytest.fixture(autouse=True)
def latency_settings(settings):
    settings.GPMAS_LATENCY_DECAY_SECONDS = 10
    settings.GPMAS_OPEN_THRESHOLD = 100
    settings.GPMAS_PENALTY_HALF_LIFE_SECONDS = 60
    settings.GPMAS_PROBE_TIMEOUT_SECONDS = 30


def provider(pk: int, weight: int = 1) -> Provider:
    return Provider(pk=pk, name=f"p{pk}", kind="console", weight=weight)


def view(p: Provider, at: float = T0) -> ProviderView:
    return provider_state.read_views([p], at=at)[p.pk]


def called(p: Provider, at: float, seconds: float, outcome: str = "accepted", **kw) -> None:
    """One call of ``seconds`` that ended at ``at``, its reservation included."""
    grant = provider_state.reserve(p, at=at - seconds)
    provider_state.record_outcome(
        p, outcome, at=at, call_id=grant.call_id, seconds_per_message=seconds, **kw
    )


def test_a_provider_has_no_estimate_before_its_first_call():
    assert (view(provider(1)).latency, view(provider(1)).in_flight) == (None, 0)


def test_a_slower_sample_is_taken_at_once():
    p = provider(1)
    called(p, T0, FAST)
    assert view(p).latency == pytest.approx(FAST)
    called(p, T0 + 0.1, SLOW)
    assert view(p).latency == pytest.approx(SLOW)


def test_a_faster_sample_is_blended_in_by_how_long_ago_the_last_one_came():
    p = provider(1)
    called(p, T0, SLOW)
    called(p, T0 + 10, FAST)  # one decay time later: e**-1 of the old estimate remains
    w = math.exp(-1)
    assert view(p, T0 + 10).latency == pytest.approx(SLOW * w + FAST * (1 - w))
    called(p, T0 + 10.1, FAST)  # right after: it barely moves
    assert view(p, T0 + 10.1).latency > 0.9 * (SLOW * w + FAST * (1 - w))


def test_a_call_is_in_flight_from_its_reservation_to_its_outcome():
    p = provider(1)
    first = provider_state.reserve(p, at=T0)
    provider_state.reserve(p, at=T0)
    assert view(p).in_flight == 2
    provider_state.record_outcome(p, "transient", at=T0 + 1, call_id=first.call_id)
    assert view(p, T0 + 1).in_flight == 1


def test_a_call_whose_worker_died_stops_counting_once_no_call_can_still_run():
    p = provider(1)
    provider_state.reserve(p, at=T0)  # never recorded: its worker was killed mid-call
    assert view(p, T0 + 29).in_flight == 1
    assert view(p, T0 + 31).in_flight == 0  # past the probe timeout, the longest call there is


def test_slow_successes_are_soft_failures_that_never_open_the_circuit():
    p = provider(1)
    for second in range(60):
        called(p, T0 + second, SLOW, slow=True)
    state = view(p, T0 + 60)
    assert (state.circuit, state.consecutive_failures) == (CLOSED, 0)
    assert 40 < state.penalty <= 50  # pushed up to half the threshold, never past it
    called(p, T0 + 61, FAST)  # a call back under the ceiling halves it, as any success
    assert view(p, T0 + 61).penalty < 26


def state(latency: float | None, in_flight: int = 0, **oldest) -> ProviderView:
    return ProviderView(
        0, 0, CLOSED, 0, 0, 0, 0, False, "", None, latency=latency, in_flight=in_flight, **oldest
    )


def speed_of(latencies: dict[int, float | None], in_flight: dict[int, int] | None = None):
    providers = [provider(pk) for pk in latencies]
    views = {p.pk: state(latencies[p.pk], (in_flight or {}).get(p.pk, 0)) for p in providers}
    return ranking.speeds(providers, views, T0)


def test_providers_within_the_tolerance_count_as_equally_fast():
    assert speed_of({1: FAST, 2: FAST * 1.9}) == {1: 1.0, 2: 1.0}
    assert speed_of({1: FAST, 2: None}) == {1: 1.0, 2: 1.0}  # no estimate yet: full share


def test_beyond_the_tolerance_speed_falls_with_the_square_of_the_slowness_to_a_floor():
    assert speed_of({1: FAST, 2: FAST * 10})[2] == pytest.approx((2 / 10) ** 2)
    assert speed_of({1: FAST, 2: SLOW})[2] == ranking.MIN_SPEED  # (2/75)**2 is below it


def test_a_busy_fast_provider_stays_fast_and_a_slow_ones_calls_in_flight_make_it_dearer():
    """Providers take calls side by side: many calls in flight to a fast provider do not make
    it slow. To a slow one, each adds its latency to the cost of the next."""
    assert speed_of({1: FAST, 2: FAST}, {1: 0, 2: 12}) == {1: 1.0, 2: 1.0}
    slower = FAST * 10
    assert speed_of({1: FAST, 2: slower}, {2: 0})[2] == pytest.approx((2 / 10) ** 2)
    assert speed_of({1: FAST, 2: slower}, {2: 1})[2] == pytest.approx((2 / 20) ** 2)


def test_a_slow_provider_keeps_one_call_going_never_more():
    """Its floor holds while it has no call in flight: one slow call holds a slot as long as
    75 fast ones, so a second would cost the system far more than it tells."""
    assert speed_of({1: FAST, 2: SLOW}, {2: 0})[2] == ranking.MIN_SPEED
    assert speed_of({1: FAST, 2: SLOW}, {2: 1})[2] < ranking.MIN_SPEED / 100


def test_a_call_running_longer_than_the_estimate_shows_the_slowdown_before_it_ends():
    fast, turning = provider(1), provider(2)
    views = {
        1: state(FAST),
        # Fast so far, but a call started 0.5 s ago is still running: it is 25x slower now.
        2: state(FAST, in_flight=1, oldest_call_started=T0 - 0.5, oldest_call_messages=1),
    }
    assert ranking.expected_cost(views[2], T0) == pytest.approx(0.5 * 2)
    assert ranking.speeds([fast, turning], views, T0)[2] < 0.01


def test_a_batch_call_s_age_counts_per_message():
    # A call of 100 messages running for 2 s: 20 ms a message, like a fast single call.
    batch = state(FAST, in_flight=1, oldest_call_started=T0 - 2, oldest_call_messages=100)
    assert ranking.expected_cost(batch, T0) == pytest.approx(0.02 * 2)


def test_the_oldest_call_in_flight_is_read_with_the_state(redis_client):
    p = provider(1)
    provider_state.reserve(p, at=T0 - 2, recipients=4)
    provider_state.reserve(p, at=T0 - 1)
    seen = view(p)
    assert (seen.in_flight, seen.oldest_call_started, seen.oldest_call_messages) == (2, T0 - 2, 4)


def test_a_75x_slower_provider_gets_under_5_percent_and_its_weighted_share_back_when_fast(
    redis_client,
):
    slow, steady = provider(1), provider(2)
    called(steady, T0, FAST)
    called(slow, T0, SLOW)
    first = first_choices([slow, steady], T0, 2000)
    assert first[1] / 2000 < 0.05
    called(slow, T0 + 60, FAST)  # fast again after a quiet minute: the old estimate is gone
    first = first_choices([slow, steady], T0 + 60, 2000)
    assert first[1] / 2000 == pytest.approx(0.5, abs=0.04)


def first_choices(providers: list[Provider], at: float, draws: int) -> Counter:
    rng = random.Random(7)
    views = provider_state.read_views(providers, at=at)
    return Counter(
        ranking.order(providers, views, at=at, rng=rng.random)[0][0].pk for _ in range(draws)
    )


def test_a_provider_reserved_alone_takes_no_second_call_while_one_is_in_flight():
    p = provider(1)
    first = provider_state.reserve(p, at=T0, alone=True)
    refused = provider_state.reserve(p, at=T0, alone=True)
    assert (first.ok, refused.ok, refused.refused_because) == (True, False, "slow_busy")
    assert provider_state.reserve(p, at=T0).ok  # not alone: calls side by side, as usual
    provider_state.record_outcome(p, "accepted", at=T0 + 1, call_id=first.call_id)
    assert not provider_state.reserve(p, at=T0 + 1, alone=True).ok  # the other is still going


def test_a_slow_provider_is_marked_for_calls_one_at_a_time(redis_client):
    slow, steady = provider(1), provider(2)
    called(steady, T0, FAST)
    called(slow, T0, SLOW)
    selection = ranking.select([slow, steady], at=T0 + 0.1)
    assert selection.slow == {slow.pk}
