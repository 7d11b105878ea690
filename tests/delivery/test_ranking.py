"""Provider ranking (docs/ranking.md) against real Redis with a controllable clock (``at=``)."""

import datetime as dt
import random
from collections import Counter

import pytest
from django.test import override_settings

from delivery import provider_state, ranking
from delivery.models import Provider
from delivery.provider_view import CLOSED, HALF_OPEN, OPEN, ProviderView

T0 = 1_800_000_000.0  # a fixed clock; every call passes its own time
SETTINGS = {
    "GPMAS_PENALTY_HALF_LIFE_SECONDS": 60,
    "GPMAS_OPEN_THRESHOLD": 100,
    "GPMAS_BASE_OPEN_SECONDS": 30,
    "GPMAS_MAX_OPEN_SECONDS": 300,
    "GPMAS_RATE_LIMIT_SECONDS": 30,
    "GPMAS_PROBE_TIMEOUT_SECONDS": 30,
}
pytestmark = pytest.mark.usefixtures("ranking_settings")


@pytest.fixture
def ranking_settings(settings):
    for name, value in SETTINGS.items():
        setattr(settings, name, value)


def provider(pk: int, weight: int = 1, **fields) -> Provider:
    """An unsaved row: ranking needs only its id, weight and quota settings."""
    return Provider(pk=pk, name=f"p{pk}", kind="console", weight=weight, **fields)


def view(p: Provider, at: float) -> ProviderView:
    return provider_state.read_views([p], at=at)[p.pk]


def record(p: Provider, outcome: str, at: float, **kw) -> float:
    return provider_state.record_outcome(p, outcome, at=at, **kw)


def test_penalty_decays_by_half_every_half_life():
    p = provider(1)
    record(p, "transient", T0)
    assert view(p, T0).penalty == pytest.approx(10)
    assert view(p, T0 + 60).penalty == pytest.approx(5)
    assert view(p, T0 + 150).penalty == pytest.approx(10 * 0.5**2.5)


def test_transient_failures_add_ten_times_the_consecutive_count():
    p = provider(1)
    assert [record(p, "transient", T0) for _ in range(3)] == pytest.approx([10, 30, 60])
    assert view(p, T0).consecutive_failures == 3


def test_unknown_outcomes_count_like_transient_ones():
    p = provider(1)
    assert [record(p, "unknown", T0), record(p, "transient", T0)] == pytest.approx([10, 30])


def test_an_acceptance_resets_the_failures_and_halves_the_penalty():
    p = provider(1)
    record(p, "transient", T0)
    record(p, "transient", T0)
    assert record(p, "accepted", T0) == pytest.approx(15)
    assert view(p, T0).consecutive_failures == 0
    assert record(p, "transient", T0) == pytest.approx(25)  # counting starts again at 1


def test_a_rate_limit_adds_twenty_and_blocks_until_retry_after():
    p = provider(1)
    assert record(p, "rate_limited", T0, retry_after=120) == pytest.approx(20)
    assert provider_state.reserve(p, at=T0 + 119).refused_because == "rate_limited"
    assert provider_state.reserve(p, at=T0 + 121).ok


def test_a_rate_limit_without_retry_after_blocks_for_the_default():
    p = provider(1)
    record(p, "rate_limited", T0)
    assert not provider_state.reserve(p, at=T0 + 29).ok
    assert provider_state.reserve(p, at=T0 + 31).ok


def test_a_provider_error_adds_a_hundred_and_opens_the_circuit():
    p = provider(1)
    assert record(p, "provider_error", T0) == pytest.approx(100)
    assert view(p, T0).circuit == OPEN
    assert view(p, T0).open_until == pytest.approx(T0 + 30)


def test_recipient_rejections_never_change_the_score():
    p = provider(1)
    record(p, "transient", T0)
    for _ in range(50):
        record(p, "recipient_rejected", T0)
    state = view(p, T0)
    assert (state.penalty, state.consecutive_failures, state.circuit) == (10, 1, CLOSED)


def test_the_circuit_opens_half_opens_probes_once_and_escalates():
    p = provider(1)
    for _ in range(4):  # 10 + 20 + 30 + 40 = 100
        record(p, "transient", T0)
    assert view(p, T0).circuit == OPEN
    assert provider_state.reserve(p, at=T0 + 29).refused_because == "open"
    assert view(p, T0 + 30).circuit == HALF_OPEN
    probe = provider_state.reserve(p, at=T0 + 30)
    assert (probe.ok, probe.probe) == (True, True)
    assert provider_state.reserve(p, at=T0 + 30).refused_because == "probing"  # one at a time
    record(p, "transient", T0 + 31, probe=True)  # a failed probe opens it again, for longer
    assert view(p, T0 + 31).circuit == OPEN
    assert view(p, T0 + 31).open_until == pytest.approx(T0 + 31 + 60)
    probe = provider_state.reserve(p, at=T0 + 91)
    assert probe.probe
    record(p, "accepted", T0 + 92, probe=True)  # a good probe closes it
    closed = view(p, T0 + 92)
    assert closed.circuit == CLOSED
    assert closed.penalty <= 50
    again = provider_state.reserve(p, at=T0 + 92)
    assert (again.ok, again.probe) == (True, False)


def test_open_time_is_capped():
    p = provider(1)
    at = T0
    for _ in range(8):
        record(p, "provider_error", at)
        state = view(p, at)
        at = state.open_until
        provider_state.reserve(p, at=at)
        record(p, "provider_error", at, probe=True)
    assert view(p, at).open_until - at == pytest.approx(300)


def test_a_stale_success_from_before_the_circuit_opened_does_not_close_it():
    p = provider(1)
    record(p, "provider_error", T0)
    record(p, "accepted", T0 + 1)  # a call that started before the circuit opened
    assert view(p, T0 + 1).circuit == OPEN


def shares(providers, at: float, draws: int, seed: int = 7) -> Counter:
    rng = random.Random(seed)
    views = provider_state.read_views(providers, at=at)
    first = Counter()
    for _ in range(draws):
        ordered, _ = ranking.order(providers, views, at=at, rng=rng.random)
        first[ordered[0].pk] += 1
    return first


def test_healthy_providers_share_traffic_by_weight():
    heavy, light = provider(1, weight=3), provider(2, weight=1)
    first = shares([heavy, light], T0, 2000)
    assert first[1] / 2000 == pytest.approx(0.75, abs=0.03)


def test_a_recovering_provider_gets_traffic_back_gradually():
    recovering, steady = provider(1), provider(2)
    record(recovering, "provider_error", T0)
    at = view(recovering, T0).open_until
    provider_state.reserve(recovering, at=at)
    record(recovering, "accepted", at, probe=True)  # closed at half the threshold
    draws = 4000
    share_by_minute = [
        shares([recovering, steady], at + 60 * minute, draws)[1] / draws for minute in range(6)
    ]
    # The same random stream each minute, so the share can only grow as the penalty decays.
    assert share_by_minute == sorted(share_by_minute)
    # Closed at 100 * 0.5 ** 0.5 / 2 = 35.4 (penalty decayed while open, halved by the probe):
    # weight 0.646 against 1.0, then the penalty halves every minute.
    for minute in (0, 5):
        penalty = 100 * 0.5**0.5 / 2 * 0.5**minute
        expected = (1 - penalty / 100) / (2 - penalty / 100)
        assert share_by_minute[minute] == pytest.approx(expected, abs=0.03)


def test_standby_providers_come_last_and_only_then():
    main, standby = provider(1, weight=1), provider(2, weight=0)
    ordered, _ = ranking.order(
        [standby, main], provider_state.read_views([main, standby], at=T0), at=T0
    )
    assert [p.pk for p in ordered] == [1, 2]
    record(main, "provider_error", T0)
    ordered, _ = ranking.order(
        [standby, main], provider_state.read_views([main, standby], at=T0), at=T0
    )
    assert [p.pk for p in ordered] == [2]


def test_with_every_provider_out_the_wait_ends_when_the_first_comes_back():
    a, b = provider(1), provider(2)
    record(a, "provider_error", T0)  # open for 30 s
    record(b, "rate_limited", T0, retry_after=10)
    ordered, wait = ranking.order([a, b], provider_state.read_views([a, b], at=T0), at=T0)
    assert ordered == []
    assert wait == pytest.approx(T0 + 10)


def test_quota_counts_recipients_and_refunds_what_was_not_taken():
    p = provider(1, daily_quota=3)
    assert [provider_state.reserve(p, at=T0).ok for _ in range(4)] == [True, True, True, False]
    assert provider_state.reserve(p, at=T0).refused_because == "quota"
    provider_state.refund(p, at=T0)
    assert provider_state.reserve(p, at=T0).ok
    assert view(p, T0).quota_used == 3


def test_quota_resets_at_midnight_in_the_providers_time_zone():
    p = provider(1, daily_quota=1, quota_reset_tz="America/New_York")
    zone = dt.timezone(dt.timedelta(hours=-5))  # New York in winter
    before_midnight = dt.datetime(2027, 1, 15, 23, 59, 30, tzinfo=zone).timestamp()
    assert provider_state.reserve(p, at=before_midnight).ok
    assert not provider_state.reserve(p, at=before_midnight + 20).ok  # 23:59:50 local
    assert provider_state.next_quota_reset("America/New_York", before_midnight) == (
        before_midnight + 30
    )
    assert provider_state.reserve(p, at=before_midnight + 31).ok  # 00:00:01 local


def test_an_exhausted_quota_waits_for_the_reset():
    p = provider(1, daily_quota=1)
    provider_state.reserve(p, at=T0)
    ordered, wait = ranking.order([p], provider_state.read_views([p], at=T0), at=T0)
    assert ordered == []
    assert wait == provider_state.next_quota_reset("UTC", T0)


def test_a_per_second_rate_limit_spreads_sends_over_seconds():
    p = provider(1, max_per_second=2)
    at = float(int(T0))
    assert [provider_state.reserve(p, at=at + 0.1).ok for _ in range(3)] == [True, True, False]
    assert provider_state.reserve(p, at=at + 0.1).refused_because == "rate"
    assert provider_state.reserve(p, at=at + 1.1).ok


def test_reading_every_providers_state_is_one_round_trip(redis_client, monkeypatch):
    from reliability import redis as project_redis

    providers = [provider(i) for i in range(1, 6)]
    calls = []
    client = project_redis.client()
    original = client.pipeline

    def counting_pipeline(*args, **kwargs):
        pipe = original(*args, **kwargs)
        real_execute = pipe.execute
        pipe.execute = lambda *a, **k: calls.append(1) or real_execute(*a, **k)
        return pipe

    monkeypatch.setattr(client, "pipeline", counting_pipeline)
    monkeypatch.setattr(client, "execute_command", lambda *a, **k: calls.append(a) or None)
    provider_state.read_views(providers, at=T0)
    assert calls == [1]


@override_settings(**SETTINGS)
def test_reset_forgets_penalty_and_circuit():
    p = provider(1)
    record(p, "provider_error", T0)
    provider_state.reset(p)
    state = view(p, T0)
    assert (state.penalty, state.circuit) == (0, CLOSED)
