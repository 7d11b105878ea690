"""An unknown outcome at a provider that posts events waits for them (delivery.event_wait): an
event marks the job sent without a second call; only silence through the window resends it.
docs/job-states.md, "An unknown outcome waits for the provider's events"."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from delivery import outbox
from delivery.models import DeliveryAttempt, EmailJob
from delivery.providers import ErrorClass, SendError
from delivery.providers.sendgrid import SendGridAdapter
from delivery.providers.smtp import SmtpAdapter
from delivery.sending import jobs_send
from tests.delivery.jobs import claim
from tests.delivery.sendpath import calls, new_job
from tests.delivery.webhooks.posting import post_sendgrid, sendgrid_event

pytestmark = pytest.mark.django_db
Status = EmailJob.Status
WINDOW = 600


@pytest.fixture(autouse=True)
def _window(settings):
    settings.GPMAS_EVENT_WAIT_SECONDS = WINDOW
    settings.GPMAS_CALLS_IN_FLIGHT = 1


def answer_lost(adapter_class, monkeypatch) -> None:
    """The provider takes the message, and the answer never comes back (a read timeout)."""
    real = adapter_class.send

    def send(self, message):
        real(self, message)
        raise SendError(ErrorClass.UNKNOWN, "read timed out after sending", code="timeout")

    monkeypatch.setattr(adapter_class, "send", send)


def all_calls(sandbox) -> int:
    return sum(calls(sandbox, kind) for kind in ("sendgrid", "mailgun", "ses", "smtp"))


def waiting_job(sandbox, monkeypatch) -> EmailJob:
    """A job whose one SendGrid call went out and whose outcome is unknown."""
    answer_lost(SendGridAdapter, monkeypatch)
    job = new_job()
    before = timezone.now()
    assert jobs_send(job_ids=[job.pk]) == {job.pk: Status.RETRYING}
    job.refresh_from_db()
    assert job.next_attempt_at >= before + dt.timedelta(seconds=WINDOW)
    return job


def test_an_unknown_outcome_at_a_provider_with_webhooks_waits_instead_of_failing_over(
    providers_in_fixed_order, clean_sandbox, monkeypatch
):
    job = waiting_job(clean_sandbox, monkeypatch)

    assert all_calls(clean_sandbox) == 1  # no other provider was tried meanwhile
    assert "waiting 600 s for the provider's events" in job.last_error
    assert not outbox.due_jobs(timezone.now() + dt.timedelta(seconds=WINDOW - 5)).filter(pk=job.pk)
    assert jobs_send(job_ids=[job.pk]) == {job.pk: "not-claimed"}  # not due: no call
    assert all_calls(clean_sandbox) == 1


def test_a_batch_call_with_an_unknown_outcome_sends_none_of_its_messages_again(
    sendgrid, clean_sandbox, monkeypatch, client
):
    """A SendGrid batch whose answer was lost: every job waits, then each one's event sends it."""
    real = SendGridAdapter.send_batch

    def answer_lost(self, messages):
        real(self, messages)
        raise SendError(ErrorClass.UNKNOWN, "read timed out after sending", code="timeout")

    monkeypatch.setattr(SendGridAdapter, "send_batch", answer_lost)
    jobs = [new_job() for _ in range(3)]

    results = jobs_send(job_ids=[job.pk for job in jobs])

    assert set(results.values()) == {Status.RETRYING}
    assert calls(clean_sandbox) == 1
    post_sendgrid(client, [sendgrid_event(job, event="processed") for job in jobs])
    assert set(EmailJob.objects.values_list("status", flat=True)) == {Status.SENT}
    assert calls(clean_sandbox) == 1


@pytest.mark.parametrize("event", ["processed", "delivered", "deferred", "bounce"])
def test_an_event_for_the_waiting_job_marks_it_sent_without_a_second_call(
    providers_in_fixed_order, clean_sandbox, monkeypatch, client, event
):
    job = waiting_job(clean_sandbox, monkeypatch)

    response = post_sendgrid(client, [sendgrid_event(job, event=event, type="bounce")])

    assert response.status_code == 200
    job.refresh_from_db()
    assert (job.status, job.last_error) == (Status.SENT, "")
    assert job.finished_at is not None and job.lease_expires_at is None
    assert job.provider.kind == "sendgrid"  # the attempt's provider: its rates count the job
    outbox.make_due_now(EmailJob.objects.filter(pk=job.pk))  # "retry now" finds nothing to do
    assert jobs_send(job_ids=[job.pk]) == {job.pk: "not-claimed"}
    assert all_calls(clean_sandbox) == 1


def test_silence_through_the_window_resends_it_through_the_normal_retry_path(
    providers_in_fixed_order, clean_sandbox, monkeypatch
):
    job = waiting_job(clean_sandbox, monkeypatch)
    monkeypatch.undo()  # the provider answers again
    # The window passes in silence.
    EmailJob.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now())

    assert jobs_send(job_ids=[job.pk]) == {job.pk: Status.SENT}
    job.refresh_from_db()
    assert job.attempts == 2
    assert all_calls(clean_sandbox) == 2


def test_an_smtp_unknown_outcome_is_retried_after_the_usual_backoff(
    smtp, clean_sandbox, monkeypatch, settings
):
    """SMTP posts no events: nothing to wait for."""
    settings.GPMAS_BACKOFF_CAP_SECONDS = 30
    answer_lost(SmtpAdapter, monkeypatch)
    job = new_job()
    before = timezone.now()

    assert jobs_send(job_ids=[job.pk]) == {job.pk: Status.RETRYING}

    job.refresh_from_db()
    assert job.next_attempt_at <= before + dt.timedelta(seconds=31)
    assert "waiting" not in job.last_error


def test_a_provider_whose_webhook_is_not_configured_is_not_waited_for(
    sendgrid, clean_sandbox, monkeypatch, settings
):
    settings.ANYMAIL = {**settings.ANYMAIL, "SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY": ""}
    settings.GPMAS_BACKOFF_CAP_SECONDS = 30
    answer_lost(SendGridAdapter, monkeypatch)
    job = new_job()

    assert jobs_send(job_ids=[job.pk]) == {job.pk: Status.RETRYING}

    job.refresh_from_db()
    assert job.next_attempt_at <= timezone.now() + dt.timedelta(seconds=31)


# --- A worker killed mid-send: the lease runs out -----------------------------------------------


def expire_lease(job: EmailJob) -> int:
    """The worker holding the job died: its lease runs out and the drain reconciles it."""
    later = timezone.now() + dt.timedelta(seconds=3600)
    return outbox.reconcile_expired_leases(now=later)


def test_an_event_arriving_before_the_lease_expires_marks_the_sending_job_sent(providers, client):
    job = new_job()
    held = claim(job.pk)  # the worker called the provider, then was killed: nothing recorded

    post_sendgrid(client, [sendgrid_event(held, event="processed")])

    job.refresh_from_db()
    assert job.status == Status.SENT
    assert expire_lease(job) == 0  # nothing left for the reconciler
    job.refresh_from_db()
    assert job.status == Status.SENT


def test_a_lost_worker_s_job_waits_then_an_event_marks_it_sent(providers, client):
    job = new_job()
    claim(job.pk)
    before = timezone.now()

    assert expire_lease(job) == 1

    job.refresh_from_db()
    assert job.status == Status.RETRYING
    assert job.next_attempt_at >= before + dt.timedelta(seconds=WINDOW)
    assert "waiting" in job.last_error
    assert DeliveryAttempt.objects.get(job=job).outcome == "unknown"
    post_sendgrid(client, [sendgrid_event(job, event="delivered")])
    job.refresh_from_db()
    assert (job.status, job.delivery_state) == (Status.SENT, "delivered")


def test_with_no_provider_posting_events_a_lost_worker_s_job_is_retried_as_before(
    providers, settings
):
    settings.ANYMAIL = {**settings.ANYMAIL, "WEBHOOK_SECRET": []}  # no webhook accepts posts
    settings.GPMAS_BACKOFF_CAP_SECONDS = 30
    job = new_job()
    claim(job.pk)

    assert expire_lease(job) == 1

    job.refresh_from_db()
    assert job.next_attempt_at <= timezone.now() + dt.timedelta(seconds=31)


def test_an_event_never_moves_a_terminal_or_untried_job(providers, client):
    cancelled, untried = new_job(), new_job()
    claim(cancelled.pk)
    expire_lease(cancelled)
    outbox.cancel(EmailJob.objects.filter(pk=cancelled.pk), reason="event deleted")

    post_sendgrid(client, [sendgrid_event(j, event="delivered") for j in (cancelled, untried)])

    statuses = dict(EmailJob.objects.values_list("pk", "status"))
    assert statuses == {cancelled.pk: Status.CANCELLED, untried.pk: Status.QUEUED}
