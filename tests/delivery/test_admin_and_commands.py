import datetime as dt
import re

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from delivery.models import EmailJob
from tests.delivery.jobs import new_job

pytestmark = pytest.mark.django_db
Status = EmailJob.Status


def test_send_test_queues_one_pinned_job_per_enabled_provider(providers, capsys):
    providers["ses"].enabled = False
    providers["ses"].save()
    call_command("gpmas", "send-test", "ops@example.com")
    jobs = EmailJob.objects.order_by("pinned_provider__name")
    assert [job.pinned_provider.kind for job in jobs] == ["mailgun", "sendgrid", "smtp"]
    assert {job.kind for job in jobs} == {"test"}
    assert "queued test email" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["not-an-email"], "to_email: 'not-an-email' is not a valid email address."),
        (["ops@example.com", "--provider", "nope"], "provider: no provider named 'nope'"),
    ],
)
def test_send_test_refuses_bad_input_with_one_line(providers, args, message):
    with pytest.raises(CommandError) as caught:
        call_command("gpmas", "send-test", *args)
    assert str(caught.value) == message
    assert not EmailJob.objects.exists()


def test_admin_lists_and_filters_jobs(admin_client):
    new_job(subject="queued one")
    cancelled = new_job(subject="cancelled one")
    EmailJob.objects.filter(pk=cancelled.pk).update(
        status="cancelled", finished_at=cancelled.created_at
    )
    response = admin_client.get(reverse("admin:delivery_emailjob_changelist"), {"status": "queued"})
    assert response.status_code == 200
    assert b"queued one" in response.content
    assert b"cancelled one" not in response.content


def test_admin_cancel_action_cancels_waiting_jobs_only(admin_client):
    waiting = new_job()
    response = admin_client.post(
        reverse("admin:delivery_emailjob_changelist"),
        {"action": "cancel", "_selected_action": [waiting.pk]},
        follow=True,
    )
    assert b"1 job(s) cancelled." in response.content
    waiting.refresh_from_db()
    assert waiting.status == Status.CANCELLED
    assert waiting.last_error == "cancelled by admin in the admin"


def test_admin_retry_now_requeues_a_failed_job_as_a_copy(admin_client):
    failed = new_job()
    EmailJob.objects.filter(pk=failed.pk).update(
        status="failed", finished_at=failed.created_at, attempts=8
    )
    admin_client.post(
        reverse("admin:delivery_emailjob_changelist"),
        {"action": "retry_now", "_selected_action": [failed.pk]},
    )
    failed.refresh_from_db()
    assert failed.status == Status.FAILED  # terminal states never change
    copy = EmailJob.objects.exclude(pk=failed.pk).get()
    assert (copy.status, copy.attempts, copy.to_email) == (Status.QUEUED, 0, failed.to_email)
    assert copy.idempotency_key.startswith(f"{failed.idempotency_key}:retry:")


def test_admin_job_page_is_read_only_and_shows_attempts(admin_client):
    job = new_job()
    response = admin_client.get(reverse("admin:delivery_emailjob_change", args=[job.pk]))
    assert response.status_code == 200
    assert b'name="subject"' not in response.content  # no editable fields
    assert admin_client.get(reverse("admin:delivery_emailjob_add")).status_code == 403


def test_admin_provider_action_sends_a_test_to_the_admin(admin_client, admin_user, providers):
    response = admin_client.post(
        reverse("admin:delivery_provider_changelist"),
        {"action": "send_test_email", "_selected_action": [providers["smtp"].pk]},
        follow=True,
    )
    assert b"Queued a test email to" in response.content
    job = EmailJob.objects.get()
    assert (job.to_email, job.pinned_provider) == (admin_user.email, providers["smtp"])


def test_non_staff_cannot_reach_the_outbox_admin(client, organizer):
    client.force_login(organizer)
    response = client.get(reverse("admin:delivery_emailjob_changelist"))
    assert response.status_code == 302


def test_status_prints_each_providers_live_state_and_the_queue(providers, capsys):
    from delivery import provider_state

    provider_state.record_outcome(
        providers["ses"],
        "provider_error",
        at=provider_state.now(),
        error="403 AccountSuspendedException",
    )
    new_job()
    call_command("gpmas", "status")
    out = capsys.readouterr().out
    ses_line = next(line for line in out.splitlines() if line.startswith("sandbox-ses"))
    assert "open until" in ses_line
    assert re.search(r"\s(99\.[5-9]|100\.0)\s", ses_line), ses_line  # decays while it runs
    assert "AccountSuspended" in ses_line
    assert "queued 1" in out


def test_admin_provider_list_shows_live_state_and_resets_it(admin_client, providers):
    from delivery import provider_state

    provider_state.record_outcome(providers["mailgun"], "provider_error", at=provider_state.now())
    url = reverse("admin:delivery_provider_changelist")
    page = admin_client.get(url).content.decode()
    assert "open until" in page
    admin_client.post(url, {"action": "reset_state", "_selected_action": [providers["mailgun"].pk]})
    assert "open until" not in admin_client.get(url).content.decode()


def test_admin_disable_action_turns_providers_off(admin_client, providers):
    admin_client.post(
        reverse("admin:delivery_provider_changelist"),
        {"action": "disable", "_selected_action": [providers["smtp"].pk]},
    )
    providers["smtp"].refresh_from_db()
    assert providers["smtp"].enabled is False


def fail(job: EmailJob, *, ago: dt.timedelta) -> None:
    EmailJob.objects.filter(pk=job.pk).update(
        status="failed", finished_at=timezone.now() - ago, last_error="gave up"
    )


def test_retry_requeues_failed_jobs_since_an_age_as_fresh_copies(capsys):
    recent, old = new_job(subject="recent"), new_job(subject="old")
    fail(recent, ago=dt.timedelta(minutes=20))
    fail(old, ago=dt.timedelta(hours=3))
    call_command("gpmas", "retry", "--failed-since", "1h")
    copies = EmailJob.objects.filter(status="queued")
    assert [job.subject for job in copies] == ["recent"]
    assert EmailJob.objects.get(pk=recent.pk).status == "failed"  # terminal stays terminal
    assert "requeued 1 failed job(s)" in capsys.readouterr().out


def test_retry_accepts_an_iso_time():
    job = new_job()
    fail(job, ago=dt.timedelta(days=2))
    since = (timezone.now() - dt.timedelta(days=3)).date().isoformat()
    call_command("gpmas", "retry", "--failed-since", since)
    assert EmailJob.objects.filter(status="queued").count() == 1


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("yesterday", "--failed-since: 'yesterday' is neither an ISO date/time nor an age"),
        ("2999-01-01", "--failed-since: '2999-01-01' is in the future"),
    ],
)
def test_retry_refuses_a_bad_time_with_one_line(value, message):
    job = new_job()
    fail(job, ago=dt.timedelta(minutes=1))
    with pytest.raises(CommandError, match=message):
        call_command("gpmas", "retry", "--failed-since", value)
    assert not EmailJob.objects.filter(status="queued").exists()
