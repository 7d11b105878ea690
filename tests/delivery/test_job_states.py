import datetime as dt

import pytest
from django.test import override_settings
from django.utils import timezone

from delivery import outbox
from delivery.models import DeliveryAttempt, EmailJob
from tests.delivery.jobs import claim, mark_sent, new_job

pytestmark = pytest.mark.django_db
Status = EmailJob.Status


def test_claim_takes_a_due_job_once_and_counts_an_attempt():
    job = new_job()
    claimed = claim(job.pk)
    assert claimed.status == Status.SENDING
    assert claimed.attempts == 1
    assert claimed.lease_expires_at > timezone.now()
    assert claim(job.pk) is None  # a redelivered task finds nothing to do


def test_claim_ignores_a_job_that_is_not_due_yet():
    job = new_job(not_before=timezone.now() + dt.timedelta(minutes=5))
    assert claim(job.pk) is None
    assert EmailJob.objects.get(pk=job.pk).status == Status.QUEUED


def test_a_late_worker_cannot_overwrite_a_job_claimed_again():
    job = new_job()
    first = claim(job.pk)
    outbox.reconcile_expired_leases(now=first.lease_expires_at + dt.timedelta(seconds=1))
    EmailJob.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now())
    second = claim(job.pk)
    assert second.attempts == 2
    assert outbox.mark_failed(first, error="late") is False
    assert EmailJob.objects.get(pk=job.pk).status == Status.SENDING


def test_release_returns_the_job_without_counting_the_attempt():
    job = claim(new_job().pk)
    assert outbox.release_many([job], due_at=timezone.now(), reason="halted")
    job.refresh_from_db()
    assert (job.status, job.attempts, job.lease_expires_at) == (Status.QUEUED, 0, None)


@override_settings(GPMAS_BACKOFF_BASE_SECONDS=10, GPMAS_BACKOFF_CAP_SECONDS=60)
def test_schedule_retry_backs_off_and_keeps_the_error():
    job = claim(new_job().pk)
    before = timezone.now()
    assert outbox.schedule_retry(job, error="sendgrid: transient HTTP 500") == Status.RETRYING
    job.refresh_from_db()
    assert job.status == Status.RETRYING
    assert before <= job.next_attempt_at <= before + dt.timedelta(seconds=20 + 1)
    assert job.last_error == "sendgrid: transient HTTP 500"


def test_retry_after_is_a_floor_for_the_backoff():
    job = claim(new_job().pk)
    before = timezone.now()
    outbox.schedule_retry(job, error="429", retry_after=120)
    job.refresh_from_db()
    assert job.next_attempt_at >= before + dt.timedelta(seconds=120)


def test_a_job_gives_up_after_max_attempts_with_the_reason_kept():
    job = new_job()
    EmailJob.objects.filter(pk=job.pk).update(max_attempts=2)
    for _ in range(2):
        EmailJob.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now())
        claimed = claim(job.pk)
        outcome = outbox.schedule_retry(claimed, error="mailgun: HTTP 503")
    job.refresh_from_db()
    assert outcome == Status.FAILED
    assert job.status == Status.FAILED
    assert job.finished_at is not None
    assert job.last_error == "gave up after 2 attempt(s): mailgun: HTTP 503"


@override_settings(GPMAS_MAX_AGE_SECONDS=60)
def test_a_job_gives_up_when_too_old():
    job = new_job()
    EmailJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - dt.timedelta(minutes=2))
    claimed = claim(job.pk)
    assert outbox.schedule_retry(claimed, error="timeout") == Status.FAILED


def test_cancel_touches_only_waiting_jobs():
    waiting, sending, sent = new_job(topic="event:9"), new_job(topic="event:9"), new_job()
    claim(sending.pk)
    held = claim(sent.pk)
    mark_sent(held, message_id="m1")
    assert outbox.cancel(EmailJob.objects.all(), reason="event deleted") == 1
    statuses = dict(EmailJob.objects.values_list("pk", "status"))
    assert statuses == {
        waiting.pk: Status.CANCELLED,
        sending.pk: Status.SENDING,
        sent.pk: Status.SENT,
    }


def test_terminal_jobs_never_change_again():
    job = new_job()
    outbox.cancel(EmailJob.objects.filter(pk=job.pk), reason="x")
    assert claim(job.pk) is None
    assert outbox.make_due_now(EmailJob.objects.filter(pk=job.pk)) == 0
    assert EmailJob.objects.get(pk=job.pk).status == Status.CANCELLED


def test_an_expired_lease_is_reconciled_to_retrying_with_an_unknown_attempt():
    job = claim(new_job().pk)
    assert outbox.reconcile_expired_leases() == 0  # lease still running
    assert outbox.reconcile_expired_leases(now=job.lease_expires_at + dt.timedelta(seconds=1)) == 1
    job.refresh_from_db()
    assert job.status == Status.RETRYING
    assert job.attempts == 1
    attempt = DeliveryAttempt.objects.get(job=job)
    assert (attempt.outcome, attempt.error_code) == ("unknown", "lease_expired")


def test_the_database_refuses_a_sending_job_without_a_lease():
    from django.db import IntegrityError, transaction

    job = new_job()
    with pytest.raises(IntegrityError), transaction.atomic():
        EmailJob.objects.filter(pk=job.pk).update(status=Status.SENDING)
