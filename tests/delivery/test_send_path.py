import datetime as dt

import pytest
from django.utils import timezone

from delivery.message import JOB_HEADER
from delivery.models import DeliveryAttempt, EmailJob, Provider
from delivery.sending import jobs_send
from reliability.models import SystemControl
from sandbox import Fault
from tests.delivery.jobs import new_job, send_one

pytestmark = pytest.mark.django_db
Status = EmailJob.Status


@pytest.fixture
def providers(providers_in_fixed_order):
    return providers_in_fixed_order


def outcomes(job: EmailJob) -> list[tuple[str, str]]:
    attempts = DeliveryAttempt.objects.filter(job=job).order_by("id")
    return [(a.provider.kind, a.outcome) for a in attempts]


def test_a_job_is_sent_by_the_first_ranked_provider(providers, clean_sandbox):
    job = new_job()
    assert send_one(job) == Status.SENT
    job.refresh_from_db()
    assert (job.status, job.attempts, job.provider.kind) == (Status.SENT, 1, "sendgrid")
    assert job.finished_at is not None and job.provider_message_id
    [captured] = clean_sandbox.inbox.messages("sendgrid")
    assert captured.headers[JOB_HEADER] == str(job.pk)
    assert outcomes(job) == [("sendgrid", "accepted")]


def test_a_failing_provider_fails_over_to_the_next_in_the_same_send(providers, clean_sandbox):
    clean_sandbox.faults.set("sendgrid", Fault(status=503))
    job = new_job()
    assert send_one(job) == Status.SENT
    job.refresh_from_db()
    assert job.attempts == 1  # one claim, two provider calls
    assert outcomes(job) == [("sendgrid", "transient"), ("mailgun", "accepted")]
    assert len(clean_sandbox.inbox.messages("mailgun")) == 1


@pytest.mark.parametrize("fault", [Fault(status=429, retry_after=5), Fault(status=401)])
def test_rate_limits_and_provider_errors_also_fail_over(providers, clean_sandbox, fault):
    clean_sandbox.faults.set("sendgrid", fault)
    job = new_job()
    assert send_one(job) == Status.SENT
    assert [outcome for _, outcome in outcomes(job)][-1] == "accepted"


def test_a_recipient_rejection_fails_the_job_without_trying_others(providers, clean_sandbox):
    clean_sandbox.faults.set("sendgrid", Fault(status=400))
    job = new_job()
    assert send_one(job) == Status.FAILED
    job.refresh_from_db()
    assert job.status == Status.FAILED
    assert job.last_error.startswith("sandbox-sendgrid: HTTP 400")
    stats = clean_sandbox.inbox.stats()
    assert [stats.get(kind, {}).get("calls", 0) for kind in ("ses", "mailgun", "smtp")] == [0, 0, 0]


def test_when_every_provider_fails_the_job_retries_then_gives_up(providers, clean_sandbox):
    for kind in ("sendgrid", "ses", "mailgun", "smtp"):
        clean_sandbox.faults.set(kind, Fault(status=451 if kind == "smtp" else 500))
    job = new_job()
    EmailJob.objects.filter(pk=job.pk).update(max_attempts=2)
    assert send_one(job) == Status.RETRYING
    job.refresh_from_db()
    assert job.next_attempt_at > timezone.now() - timezone.timedelta(seconds=1)
    assert "sandbox-sendgrid: transient" in job.last_error
    EmailJob.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now())
    assert send_one(job) == Status.FAILED
    job.refresh_from_db()
    assert job.last_error.startswith("gave up after 2 attempt(s): ")
    assert len(outcomes(job)) == 8


def test_a_redelivered_task_is_a_no_op(providers, clean_sandbox):
    job = new_job()
    jobs_send(job_ids=[job.pk])
    jobs_send(job_ids=[job.pk])  # the broker delivered the same message again
    assert len(clean_sandbox.inbox.messages()) == 1
    assert EmailJob.objects.get(pk=job.pk).attempts == 1


def test_while_halted_nothing_is_claimed_or_sent(providers, clean_sandbox):
    SystemControl.objects.create(pk=1, halted=True, reason="incident")
    job = new_job()
    assert send_one(job) == "halted"
    job.refresh_from_db()
    assert (job.status, job.attempts) == (Status.QUEUED, 0)
    assert clean_sandbox.inbox.stats() == {} or all(
        s["calls"] == 0 for s in clean_sandbox.inbox.stats().values()
    )


def test_with_no_enabled_provider_the_job_waits_without_counting_an_attempt(providers):
    Provider.objects.update(enabled=False)
    job = new_job()
    assert send_one(job) == Status.QUEUED
    job.refresh_from_db()
    assert (job.status, job.attempts) == (Status.QUEUED, 0)
    assert job.next_attempt_at > timezone.now()
    assert not DeliveryAttempt.objects.exists()


def test_a_pinned_job_uses_only_its_provider(providers, clean_sandbox):
    job = new_job(pinned_provider=providers["smtp"])
    assert send_one(job) == Status.SENT
    assert [m.provider for m in clean_sandbox.inbox.messages()] == ["smtp"]


def test_a_pinned_job_waits_when_its_provider_fails(providers, clean_sandbox):
    clean_sandbox.faults.set("smtp", Fault(status=451))
    job = new_job(pinned_provider=providers["smtp"])
    assert send_one(job) == Status.RETRYING
    assert clean_sandbox.inbox.messages() == []


def test_with_every_provider_open_no_call_is_made_until_the_first_reopens(providers, clean_sandbox):
    from delivery import provider_state

    now = provider_state.now()
    for provider in Provider.objects.all():
        provider_state.record_outcome(provider, "provider_error", at=now)
    first_back = min(
        provider_state.read_views(list(Provider.objects.all()), at=now)[p.pk].open_until
        for p in Provider.objects.all()
    )
    job = new_job()
    assert send_one(job) == Status.QUEUED
    job.refresh_from_db()
    assert (job.status, job.attempts) == (Status.QUEUED, 0)
    assert job.next_attempt_at.timestamp() == pytest.approx(first_back, abs=0.01)
    assert all(s["calls"] == 0 for s in clean_sandbox.inbox.stats().values())


def test_a_job_no_provider_can_ever_take_gives_up_at_its_maximum_age(
    providers, clean_sandbox, settings
):
    """A test email pinned to a provider that was disabled waits without counting attempts;
    the age limit still ends it, with the reason."""
    providers["smtp"].enabled = False
    providers["smtp"].save()
    job = new_job(pinned_provider=providers["smtp"])
    assert send_one(job) == Status.QUEUED  # young: it waits for the provider to come back
    EmailJob.objects.filter(pk=job.pk).update(
        created_at=timezone.now() - dt.timedelta(seconds=settings.GPMAS_MAX_AGE_SECONDS + 1),
        next_attempt_at=timezone.now(),
    )

    assert send_one(job) == Status.FAILED

    job.refresh_from_db()
    assert job.last_error.startswith("gave up: no provider can take it now")
