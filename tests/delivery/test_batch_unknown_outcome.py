"""A batch call whose outcome is unknown (the provider answered after the adapter's read timeout)
does not turn into a burst of duplicates (issue #15; docs/architecture.md, "A failed batch
call"). The real send path against the sandbox, which holds SendGrid's answer past the timeout
and then accepts the batch, as a stalled provider does; no provider posts events here."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from django.utils import timezone

from delivery.models import DeliveryAttempt, EmailJob, Provider
from delivery.providers.sendgrid import SendGridAdapter
from delivery.sending import jobs_send
from sandbox import Fault
from tests.delivery.sendpath import ids, new_job, timed_send

pytestmark = pytest.mark.django_db
Status = EmailJob.Status
READ_TIMEOUT = 1.5  # long enough that no other call times out on a loaded machine
BATCH = 100


@pytest.fixture
def stalled_sendgrid(providers_in_fixed_order, clean_sandbox, settings):
    """SendGrid (the only weighted provider) answers 1 s late: after the adapter gave up."""
    settings.GPMAS_PROVIDER_READ_TIMEOUT = READ_TIMEOUT
    Provider.objects.update(daily_quota=10_000)
    clean_sandbox.faults.set("sendgrid", Fault(hang=True, hang_seconds=2 * READ_TIMEOUT))
    return clean_sandbox


def recovers_after_the_first_call(monkeypatch, sandbox) -> None:
    real = SendGridAdapter.send_batch

    def send_batch(self, messages):
        try:
            return real(self, messages)
        finally:
            sandbox.faults.clear("sendgrid")

    monkeypatch.setattr(SendGridAdapter, "send_batch", send_batch)


def send_until_done(jobs: list[EmailJob], *, within: float = 60.0) -> int:
    """What the drain does: send the waiting jobs whenever they are due, until none waits.
    Returns how many sends that took."""
    deadline, sends = time.monotonic() + within, 0
    while waiting := list(EmailJob.objects.filter(pk__in=ids(jobs), status__in=WAITING)):
        assert time.monotonic() < deadline, Counter(job.status for job in waiting)
        due = min(job.next_attempt_at for job in waiting)
        time.sleep(max(0.0, (due - timezone.now()).total_seconds()))
        jobs_send(job_ids=ids(waiting))
        sends += 1
    return sends


WAITING = (Status.QUEUED, Status.RETRYING)


def copies_by_job(sandbox) -> Counter:
    assert sandbox.inbox.wait_for(lambda inbox: inbox.in_flight() == 0, timeout=10)
    return Counter(message.job for message in sandbox.inbox.messages())


@pytest.mark.parametrize("recovers", [True, False], ids=["recovers", "keeps-stalling"])
def test_a_timed_out_batch_is_retried_together_after_a_backoff_not_resent_at_once(
    stalled_sendgrid, monkeypatch, settings, recovers
):
    sandbox = stalled_sendgrid
    if recovers:
        recovers_after_the_first_call(monkeypatch, sandbox)
    jobs = [new_job() for _ in range(BATCH)]

    results, window = timed_send(ids(jobs))
    calls_at_once = sum(stats["calls"] for stats in sandbox.inbox.stats().values())
    due = set(EmailJob.objects.filter(pk__in=ids(jobs)).values_list("next_attempt_at", flat=True))
    send_until_done(jobs)
    copies = copies_by_job(sandbox)
    calls = {kind: stats["calls"] for kind, stats in sandbox.inbox.stats().items()}
    # The figures in README, "Performance" (run with -s to see them).
    print(f"copies per recipient {dict(Counter(copies.values()))}, calls {calls}")

    # Nothing else was called once the answer was lost: no burst of single sends.
    assert results == dict.fromkeys(ids(jobs), Status.RETRYING)
    assert calls_at_once == 1
    [due_at] = due  # one moment for all, not right away
    assert due_at >= window[0] + timezone.timedelta(seconds=settings.GPMAS_BACKOFF_BASE_SECONDS)
    for job in jobs:
        job.refresh_from_db()
        assert job.status == Status.SENT
        # Every copy comes from a call that may have delivered it, and only the batch calls
        # carried it: a copy per call, never more.
        carried = DeliveryAttempt.objects.filter(job=job, outcome__in=["accepted", "unknown"])
        assert copies[str(job.pk)] == carried.count()
    # The lost batch's copy, and the retry's: the retry went as one batch to another provider
    # (SendGrid may have the messages), whether or not SendGrid had recovered meanwhile.
    assert set(copies.values()) == {2}
    assert calls == {"sendgrid": 1, "mailgun": 1, "ses": 0, "smtp": 0}


def test_with_no_other_provider_the_retry_goes_back_to_the_one_whose_answer_was_lost(
    sendgrid, clean_sandbox, monkeypatch, settings
):
    settings.GPMAS_PROVIDER_READ_TIMEOUT = READ_TIMEOUT
    clean_sandbox.faults.set("sendgrid", Fault(hang=True, hang_seconds=2 * READ_TIMEOUT))
    recovers_after_the_first_call(monkeypatch, clean_sandbox)
    jobs = [new_job() for _ in range(20)]

    assert jobs_send(job_ids=ids(jobs)) == dict.fromkeys(ids(jobs), Status.RETRYING)
    send_until_done(jobs)

    assert set(copies_by_job(clean_sandbox).values()) == {2}
    assert clean_sandbox.inbox.stats()["sendgrid"]["calls"] == 2  # two batch calls
    for job in jobs:
        assert EmailJob.objects.get(pk=job.pk).status == Status.SENT
