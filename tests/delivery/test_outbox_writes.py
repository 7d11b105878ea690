"""The outbox's writes the send path relies on: batch claims, put-backs, recorded acceptances,
and the halt reading that rides along with them."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from delivery import outbox, services
from delivery.models import DeliveryAttempt, EmailJob, Provider
from reliability.models import SystemControl
from tests.delivery.jobs import claim
from tests.delivery.sendpath import ids, new_job

pytestmark = pytest.mark.django_db
Status = EmailJob.Status


# --- outbox.claim_many --------------------------------------------------------------------------


def test_claim_many_takes_due_free_jobs_in_id_order_counting_one_attempt_each():
    due = [new_job() for _ in range(3)]
    later = new_job(not_before=timezone.now() + dt.timedelta(minutes=5))
    sending_already = new_job()
    claim(sending_already.pk)
    cancelled = new_job()
    outbox.cancel(EmailJob.objects.filter(pk=cancelled.pk), reason="x")
    retrying_due = new_job()
    outbox.schedule_retry(claim(retrying_due.pk), error="503")
    EmailJob.objects.filter(pk=retrying_due.pk).update(next_attempt_at=timezone.now())
    asked = [
        due[2].pk,
        later.pk,
        retrying_due.pk,
        due[0].pk,
        sending_already.pk,
        cancelled.pk,
        due[1].pk,
        10**9,
    ]

    before = timezone.now()
    claimed = outbox.claim_many(asked)

    expected = sorted([*ids(due), retrying_due.pk])
    assert [job.pk for job in claimed] == expected
    for job in claimed:
        assert job.status == Status.SENDING
        assert job.lease_expires_at >= before + dt.timedelta(seconds=299)
        assert job.attempts == (2 if job.pk == retrying_due.pk else 1)
        assert EmailJob.objects.get(pk=job.pk).attempts == job.attempts
    untouched = {pk: EmailJob.objects.get(pk=pk) for pk in (later.pk, sending_already.pk)}
    assert (untouched[later.pk].status, untouched[later.pk].attempts) == (Status.QUEUED, 0)
    assert untouched[sending_already.pk].attempts == 1
    assert outbox.claim_many(expected) == []


def test_release_many_gives_back_only_the_attempts_of_jobs_still_held():
    jobs = outbox.claim_many(ids([new_job() for _ in range(3)]))
    EmailJob.objects.filter(pk=jobs[2].pk).update(attempts=F("attempts") + 1)  # claimed again
    due_at = timezone.now() + dt.timedelta(seconds=7)

    assert outbox.release_many(jobs, due_at=due_at, reason="halted") == 2

    for job in jobs[:2]:
        job.refresh_from_db()
        assert (job.status, job.attempts, job.next_attempt_at) == (Status.QUEUED, 0, due_at)
        assert job.last_error == "halted"
    assert EmailJob.objects.get(pk=jobs[2].pk).status == Status.SENDING


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_claim_many_skips_a_row_another_transaction_holds_without_waiting(monkeypatch):
    monkeypatch.setattr(services, "nudge_drain", lambda: None)  # autocommit: it would publish
    jobs = [new_job() for _ in range(3)]
    locked, release, failures = threading.Event(), threading.Event(), []

    def hold_the_middle_row() -> None:
        try:
            with transaction.atomic():
                EmailJob.objects.select_for_update().get(pk=jobs[1].pk)
                locked.set()
                release.wait(timeout=10)
        except Exception as exc:  # asserted below
            failures.append(exc)
            locked.set()
        finally:
            connection.close()

    holder = threading.Thread(target=hold_the_middle_row)
    holder.start()
    try:
        assert locked.wait(timeout=10)
        started = time.monotonic()
        claimed = outbox.claim_many(ids(jobs))
        elapsed = time.monotonic() - started
    finally:
        release.set()
        holder.join(timeout=30)

    assert failures == []
    assert [job.pk for job in claimed] == [jobs[0].pk, jobs[2].pk]
    assert elapsed < 2
    jobs[1].refresh_from_db()
    assert (jobs[1].status, jobs[1].attempts) == (Status.QUEUED, 0)
    assert [job.pk for job in outbox.claim_many([jobs[1].pk])] == [jobs[1].pk]


# --- outbox.record_accepted ---------------------------------------------------------------------


@pytest.fixture
def console_provider() -> Provider:
    return Provider.objects.create(name="console-a", kind="console")


def accepted(job: EmailJob, provider: Provider, message_id: str = "msg-1") -> outbox.Attempt:
    return outbox.Attempt(job, provider, timezone.now(), 12, "accepted", message_id=message_id)


def test_record_accepted_marks_the_job_sent_and_says_whether_sending_is_halted(
    console_provider,
):
    running, halted = outbox.claim_many(ids([new_job(), new_job()]))

    assert outbox.record_accepted([accepted(running, console_provider, "msg-1")]) is False
    SystemControl.objects.create(pk=1, halted=True, reason="incident")
    assert outbox.record_accepted([accepted(halted, console_provider, "msg-2")]) is True

    for job, message_id in ((running, "msg-1"), (halted, "msg-2")):
        job.refresh_from_db()
        assert (job.status, job.attempts, job.provider_id) == (Status.SENT, 1, console_provider.pk)
        assert (job.provider_message_id, job.lease_expires_at) == (message_id, None)
        assert job.finished_at is not None and job.last_error == ""
        [attempt] = DeliveryAttempt.objects.filter(job=job)
        assert (attempt.outcome, attempt.provider_id, attempt.duration_ms) == (
            "accepted",
            console_provider.pk,
            12,
        )


def test_record_accepted_does_not_touch_a_job_no_longer_held(console_provider):
    [job] = outbox.claim_many([new_job().pk])
    EmailJob.objects.filter(pk=job.pk).update(attempts=F("attempts") + 1)  # claimed again

    assert outbox.record_accepted([accepted(job, console_provider)]) is False

    job.refresh_from_db()
    assert (job.status, job.attempts, job.provider_id, job.provider_message_id) == (
        Status.SENDING,
        2,
        None,
        "",
    )
    # A job already sent stays as it was sent.
    [other] = outbox.claim_many([new_job().pk])
    outbox.record_accepted([accepted(other, console_provider, "first")])
    outbox.record_accepted([accepted(other, console_provider, "second")])
    assert EmailJob.objects.get(pk=other.pk).provider_message_id == "first"


@pytest.mark.postgres
def test_record_accepted_is_one_statement_on_postgresql(
    console_provider, django_assert_num_queries
):
    [job] = outbox.claim_many([new_job().pk])
    with django_assert_num_queries(1):
        assert outbox.record_accepted([accepted(job, console_provider)]) is False
    assert EmailJob.objects.get(pk=job.pk).status == Status.SENT


def test_record_accepted_for_a_batch_call_marks_only_the_jobs_still_held(console_provider):
    jobs = outbox.claim_many(ids([new_job() for _ in range(3)]))
    EmailJob.objects.filter(pk=jobs[1].pk).update(attempts=F("attempts") + 1)
    SystemControl.objects.create(pk=1, halted=True, reason="incident")

    assert outbox.record_accepted([accepted(j, console_provider, "call") for j in jobs])

    statuses = dict(EmailJob.objects.filter(pk__in=ids(jobs)).values_list("pk", "status"))
    assert statuses == {jobs[0].pk: "sent", jobs[1].pk: "sending", jobs[2].pk: "sent"}
    assert DeliveryAttempt.objects.filter(job__in=jobs, outcome="accepted").count() == 3
