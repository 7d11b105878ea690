"""Jobs whose turn does not come in a batch (halt, the batch's deadline, Redis down) go back to the
queue as if never claimed: no attempt counted, due again at once or after a short wait. A job a
provider may already have is never among them."""

from __future__ import annotations

import time

import pytest
import redis

from delivery import provider_state, sending
from delivery.models import DeliveryAttempt, EmailJob
from delivery.providers import ErrorClass, SendError
from delivery.providers.sendgrid import (
    SendGridAdapter,
)
from delivery.sending import jobs_send
from reliability.halt import system_halt
from sandbox import Fault
from tests.delivery.sendpath import (
    ICS,
    OTHER_SENDER,
    REDIS_DOWN,
    assert_put_back,
    calls,
    ids,
    new_job,
    timed_send,
)

pytestmark = pytest.mark.django_db
Status = EmailJob.Status


# --- Halt, time budget and Redis: the jobs whose turn does not come go back ----------------------


def halt_after(monkeypatch, cls, method: str, *, calls_before_halt: int = 1) -> None:
    """Halt the system (for real) from inside the adapter, right after its n-th call."""
    real = getattr(cls, method)
    count = {"n": 0}

    def call(self, *args):
        try:
            return real(self, *args)
        finally:
            count["n"] += 1
            if count["n"] == calls_before_halt:
                system_halt(reason="incident", source="test")

    monkeypatch.setattr(cls, method, call)


def test_a_halt_after_a_call_stops_the_rest_of_the_batch(
    sendgrid, clean_sandbox, monkeypatch, settings
):
    settings.GPMAS_CALLS_IN_FLIGHT = 1  # one call at a time: the order is the test's
    halt_after(monkeypatch, SendGridAdapter, "send")
    jobs = [new_job(ics=ICS) for _ in range(5)]  # not batchable: one call each

    results, window = timed_send(ids(jobs))

    assert calls(clean_sandbox) == 1
    assert (results[jobs[0].pk], results[jobs[1].pk]) == (Status.SENT, sending.HALTED)
    assert EmailJob.objects.get(pk=jobs[0].pk).status == Status.SENT
    assert_put_back(jobs[1:], window)


def test_a_halt_after_a_batch_call_stops_the_next_batch_and_the_singles(
    sendgrid, clean_sandbox, monkeypatch, settings
):
    settings.GPMAS_CALLS_IN_FLIGHT = 1  # one call at a time: the order is the test's
    halt_after(monkeypatch, SendGridAdapter, "send_batch")
    first = [new_job() for _ in range(3)]
    second = [new_job(from_email=OTHER_SENDER) for _ in range(3)]
    alone = [new_job(ics=ICS) for _ in range(2)]

    _, window = timed_send(ids(first + second + alone))

    assert calls(clean_sandbox) == 1
    assert {EmailJob.objects.get(pk=pk).status for pk in ids(first)} == {Status.SENT}
    assert_put_back(second + alone, window)


def test_a_batch_past_half_the_lease_puts_the_untried_jobs_back(sendgrid, clean_sandbox, settings):
    settings.GPMAS_BATCH_DEADLINE_SECONDS = 0  # passed as soon as the claim is made
    jobs = [new_job(ics=ICS) for _ in range(3)]

    _, window = timed_send(ids(jobs))

    assert calls(clean_sandbox) == 0
    assert_put_back(jobs, window, reason="the batch ended before its turn")


def test_a_slow_batch_call_leaves_no_time_for_the_singles(sendgrid, clean_sandbox, settings):
    settings.GPMAS_CALLS_IN_FLIGHT = 1  # one call at a time: the order is the test's
    settings.GPMAS_BATCH_DEADLINE_SECONDS = 0.3  # no call starts later than 0.3 s after the claim
    clean_sandbox.faults.set("sendgrid", Fault(latency_ms=400))
    batched = [new_job() for _ in range(3)]
    alone = [new_job(ics=ICS) for _ in range(2)]

    _, window = timed_send(ids(batched + alone))

    assert calls(clean_sandbox) == 1
    assert {EmailJob.objects.get(pk=pk).status for pk in ids(batched)} == {Status.SENT}
    assert_put_back(alone, window, reason="the batch ended before its turn")


def test_a_slow_batch_call_leaves_no_time_for_the_next_batch(sendgrid, clean_sandbox, settings):
    settings.GPMAS_CALLS_IN_FLIGHT = 1  # one call at a time: the order is the test's
    settings.GPMAS_BATCH_DEADLINE_SECONDS = 0.3
    clean_sandbox.faults.set("sendgrid", Fault(latency_ms=400))
    first = [new_job() for _ in range(3)]
    second = [new_job(from_email=OTHER_SENDER) for _ in range(3)]

    _, window = timed_send(ids(first + second))

    assert calls(clean_sandbox) == 1
    assert_put_back(second, window, reason="the batch ended before its turn")


def redis_down(monkeypatch, *, after: int = 0) -> None:
    """Provider state reads and reservations fail (as with Redis down) from the ``after``+1-th
    of them on."""
    real_read, real_reserve = provider_state.read_views, provider_state.reserve
    count = {"n": 0}

    def up() -> None:
        count["n"] += 1
        if count["n"] > after:
            raise redis.ConnectionError("Error 111 connecting to redis. Connection refused.")

    def read_views(providers, *, at, along=None):
        up()
        return real_read(providers, at=at, along=along)

    def reserve(provider, *, at, recipients=1, alone=False):
        up()
        return real_reserve(provider, at=at, recipients=recipients, alone=alone)

    monkeypatch.setattr(provider_state, "read_views", read_views)
    monkeypatch.setattr(provider_state, "reserve", reserve)


def test_redis_down_before_a_single_job_puts_it_back_for_5_seconds(
    sendgrid, clean_sandbox, monkeypatch
):
    redis_down(monkeypatch)
    job = new_job()

    _, window = timed_send([job.pk])

    assert calls(clean_sandbox) == 0
    assert_put_back([job], window, later_by=REDIS_DOWN, reason="Redis unavailable")


def test_redis_down_mid_batch_puts_the_untried_jobs_back_for_5_seconds(
    sendgrid, clean_sandbox, monkeypatch
):
    redis_down(monkeypatch, after=2)  # the batch's ranking and the first job's reservation
    jobs = [new_job(ics=ICS) for _ in range(4)]

    _, window = timed_send(ids(jobs))

    assert calls(clean_sandbox) == 1
    assert EmailJob.objects.get(pk=jobs[0].pk).status == Status.SENT
    assert_put_back(jobs[1:], window, later_by=REDIS_DOWN, reason="Redis unavailable")


@pytest.mark.parametrize("where", ["ranking", "reserve"])
def test_redis_down_at_the_start_of_a_batch_puts_every_job_back_for_5_seconds(
    sendgrid, clean_sandbox, monkeypatch, where
):
    if where == "ranking":
        redis_down(monkeypatch)
    else:

        def reserve(provider, *, at, recipients=1, alone=False):
            raise redis.ConnectionError("Connection refused.")

        monkeypatch.setattr(provider_state, "reserve", reserve)
    jobs = [new_job() for _ in range(3)]

    _, window = timed_send(ids(jobs))

    assert calls(clean_sandbox) == 0
    assert_put_back(jobs, window, later_by=REDIS_DOWN, reason="Redis unavailable")


# --- A job a provider may have is never put back as untried -----------------------------------


def assert_retried_after(job: EmailJob, outcome: str) -> None:
    """Tried, its attempt counted and logged, due again after a backoff (not put back)."""
    job.refresh_from_db()
    assert (job.status, job.attempts) == (Status.RETRYING, 1)
    assert outcome in DeliveryAttempt.objects.filter(job=job).values_list("outcome", flat=True)


def test_jobs_of_a_batch_call_with_an_unknown_outcome_are_not_put_back_when_the_batch_ends(
    sendgrid, clean_sandbox, monkeypatch, settings
):
    """The call went out, the answer was lost, and the batch's time ran out: the provider may
    have the messages, so they are retried after a backoff, their attempt counted."""
    settings.GPMAS_CALLS_IN_FLIGHT = 1
    settings.GPMAS_BATCH_DEADLINE_SECONDS = 0.2
    real = SendGridAdapter.send_batch

    def answer_lost(self, messages):
        real(self, messages)
        time.sleep(0.3)  # past the batch's deadline: no further call starts
        raise SendError(ErrorClass.UNKNOWN, "no response", code="no_response")

    monkeypatch.setattr(SendGridAdapter, "send_batch", answer_lost)
    jobs = [new_job() for _ in range(3)]

    results = jobs_send(job_ids=ids(jobs))

    assert calls(clean_sandbox) == 1
    assert set(results.values()) == {Status.RETRYING}
    for job in jobs:
        assert_retried_after(job, "unknown")


def test_a_failed_job_meeting_redis_down_at_its_next_provider_is_retried_not_put_back(
    providers_in_fixed_order, clean_sandbox, monkeypatch, settings
):
    settings.GPMAS_CALLS_IN_FLIGHT = 1
    clean_sandbox.faults.set("sendgrid", Fault(status=503))  # the first provider fails...
    real_reserve = provider_state.reserve
    reservations = []

    def reserve(provider, *, at, recipients=1, alone=False):
        reservations.append(provider.kind)
        if len(reservations) > 1:  # ...and Redis is gone when the next is reserved
            raise redis.ConnectionError("Connection refused.")
        return real_reserve(provider, at=at, recipients=recipients, alone=alone)

    monkeypatch.setattr(provider_state, "reserve", reserve)
    job = new_job(ics=ICS)

    assert jobs_send(job_ids=[job.pk]) == {job.pk: Status.RETRYING}

    assert reservations == ["sendgrid", "mailgun"]
    assert_retried_after(job, "transient")


def test_a_halt_between_the_reservation_and_the_call_gives_the_reservation_back(
    sendgrid, clean_sandbox, monkeypatch, settings
):
    """The switch is read after the reservation, right before the call: a halt committed in
    between stops the call, and the quota and the call in flight are given back."""
    settings.GPMAS_CALLS_IN_FLIGHT = 1
    real_reserve = provider_state.reserve

    def reserve_then_halt(provider, *, at, recipients=1, alone=False):
        grant = real_reserve(provider, at=at, recipients=recipients, alone=alone)
        system_halt(reason="incident", source="test")
        return grant

    monkeypatch.setattr(provider_state, "reserve", reserve_then_halt)
    job = new_job(ics=ICS)

    results, window = timed_send([job.pk])

    assert results == {job.pk: sending.HALTED}
    assert calls(clean_sandbox) == 0
    state = provider_state.read_views([sendgrid], at=provider_state.now())[sendgrid.pk]
    assert (state.quota_used, state.in_flight) == (0, 0)
    assert_put_back([job], window)
