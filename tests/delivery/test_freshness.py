"""The send path's reuse policy (``delivery.freshness``): what it may reuse, for how long, and
that failures are never held back."""

import pytest

from delivery import freshness, provider_state
from delivery.freshness import DeferredSuccesses, HaltCheck, ProviderStateCache
from delivery.models import Provider
from reliability.models import SystemControl

T0 = 1_800_000_000.0


def provider(pk: int) -> Provider:
    """An unsaved row: provider state needs only its id and quota settings."""
    return Provider(pk=pk, name=f"p{pk}", kind="console", weight=1)


def failures_in_a_row(p: Provider) -> int:
    return provider_state.read_views([p], at=T0)[p.pk].consecutive_failures


# --- HaltCheck ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_fresh_reading_serves_the_next_check_once_without_a_query(
    django_assert_num_queries, monkeypatch
):
    clock = [1000.0]
    monkeypatch.setattr(freshness.time, "monotonic", lambda: clock[0])
    switch = HaltCheck()
    switch.read_with(lambda: True)  # the database says otherwise: only the reading says True
    clock[0] += freshness.HALT_READING_SECONDS / 2
    with django_assert_num_queries(0):
        assert switch.halted() is True
    with django_assert_num_queries(1):
        assert switch.halted() is False  # used up: asked again


@pytest.mark.django_db
def test_a_stale_reading_is_taken_again(django_assert_num_queries, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(freshness.time, "monotonic", lambda: clock[0])
    switch = HaltCheck()
    switch.read_with(lambda: True)
    clock[0] += 2 * freshness.HALT_READING_SECONDS
    with django_assert_num_queries(1):
        assert switch.halted() is False


@pytest.mark.django_db
def test_a_reading_is_as_old_as_the_moment_its_write_was_sent(
    django_assert_num_queries, monkeypatch
):
    # The statement reads the switch when it runs; if its answer is held up (a busy process, a
    # lock wait), the reading is that much older when it is kept, and must not serve a call then.
    clock = [1000.0]
    monkeypatch.setattr(freshness.time, "monotonic", lambda: clock[0])
    switch = HaltCheck()

    def slow_write() -> bool:
        clock[0] += 2 * freshness.HALT_READING_SECONDS
        return False  # the switch was off when the statement read it

    SystemControl.objects.create(pk=1, halted=True, reason="halted while the answer was held up")
    assert switch.read_with(slow_write) is False
    with django_assert_num_queries(1):
        assert switch.halted() is True


@pytest.mark.django_db
def test_with_no_freshness_allowed_every_check_queries(django_assert_num_queries, monkeypatch):
    monkeypatch.setattr(freshness, "HALT_READING_SECONDS", 0)
    switch = HaltCheck()
    switch.read_with(lambda: True)
    with django_assert_num_queries(1):
        assert switch.halted() is False


@pytest.mark.django_db
def test_without_a_reading_the_switch_queries(django_assert_num_queries):
    SystemControl.objects.create(pk=1, halted=True, reason="incident")
    with django_assert_num_queries(1):
        assert HaltCheck().halted() is True


# --- ProviderStateCache ------------------------------------------------------------------------


def counting_reads(monkeypatch) -> list[int]:
    reads = []
    real = provider_state.read_views

    def read_views(providers, *, at, along=None):
        reads.append(1)
        return real(providers, at=at, along=along)

    monkeypatch.setattr(provider_state, "read_views", read_views)
    return reads


def test_a_batch_reuses_the_state_it_read_for_a_few_milliseconds(monkeypatch):
    reads = counting_reads(monkeypatch)
    clock = [100.0]
    monkeypatch.setattr(freshness.time, "monotonic", lambda: clock[0])
    cache = ProviderStateCache([provider(1), provider(2)], DeferredSuccesses())

    assert cache.views(at=T0)[1] is True
    clock[0] += freshness.PROVIDER_STATE_SECONDS / 2
    views, fresh = cache.views(at=T0)
    assert (len(reads), fresh, sorted(views)) == (1, False, [1, 2])
    clock[0] += freshness.PROVIDER_STATE_SECONDS
    assert cache.views(at=T0)[1] is True and len(reads) == 2
    cache.forget()  # after a failure: the next selection reads afresh
    assert cache.views(at=T0)[1] is True and len(reads) == 3


# --- DeferredSuccesses -------------------------------------------------------------------------


def test_successes_ride_along_with_the_next_read_and_failures_keep_their_order():
    p = provider(1)
    provider_state.record_outcome(p, "transient", at=T0)  # one failure in a row
    successes = DeferredSuccesses()
    cache = ProviderStateCache([p], successes)
    successes.add(p, at=T0)
    assert failures_in_a_row(p) == 1  # not written yet
    assert cache.views(at=T0)[0][p.pk].consecutive_failures == 0  # written by this very read
    successes.add(p, at=T0)
    # A failure is written at once, after the success waiting before it: then it counts.
    provider_state.record_outcome(p, "transient", at=T0, along=successes.pending)
    assert failures_in_a_row(p) == 1
    assert successes.pending == []


def test_successes_still_waiting_are_written_at_the_end_of_a_batch():
    p = provider(1)
    provider_state.record_outcome(p, "transient", at=T0)
    successes = DeferredSuccesses()
    successes.add(p, at=T0)
    assert successes.write_now() is True
    assert failures_in_a_row(p) == 0
    assert successes.pending == []
