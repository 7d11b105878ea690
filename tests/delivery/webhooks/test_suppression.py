"""The suppression list: what adds an address, what a suppressed address still gets, and a
suppressed job never reaching a provider."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from delivery import suppression
from delivery.models import EmailJob, Suppression, SuppressionAudit
from delivery.sending import jobs_send
from tests.delivery.jobs import new_job
from tests.delivery.sendpath import calls
from tests.delivery.webhooks.posting import post_sendgrid, sendgrid_event

pytestmark = pytest.mark.django_db
Status = EmailJob.Status


def bounce(client, job, kind="bounce"):
    response = post_sendgrid(client, [sendgrid_event(job, event="bounce", type=kind)])
    assert response.status_code == 200


def test_a_hard_bounced_address_gets_no_further_job_sent(client, sendgrid, clean_sandbox):
    bounce(client, new_job(to_email="Gone@Example.com"))
    [row] = Suppression.objects.all()
    assert (row.address, row.reason) == ("gone@example.com", Suppression.Reason.HARD_BOUNCE)
    assert row.source_event.recipient == "gone@example.com"
    assert row.expires_at > timezone.now() + dt.timedelta(days=29)

    job = new_job(to_email="GONE@example.COM")
    assert (job.status, job.finished_at is not None) == (Status.SUPPRESSED, True)
    assert "suppressed" in job.last_error

    results = jobs_send(job_ids=[job.pk])

    assert results[job.pk] == "not-claimed"
    assert calls(clean_sandbox, "sendgrid") == 0
    job.refresh_from_db()
    assert job.status == Status.SUPPRESSED and job.attempts == 0


def test_the_guest_s_confirmation_still_goes_unless_they_complained(client):
    bounce(client, new_job(to_email="bounced@example.com"))
    post_sendgrid(
        client, [sendgrid_event(new_job(to_email="angry@example.com"), event="spamreport")]
    )

    assert new_job(to_email="bounced@example.com", kind="confirmation").status == Status.QUEUED
    assert new_job(to_email="bounced@example.com", kind="invitation").status == Status.SUPPRESSED
    assert new_job(to_email="angry@example.com", kind="confirmation").status == Status.SUPPRESSED
    assert Suppression.objects.get(address="angry@example.com").expires_at is None


def test_soft_bounces_suppress_only_when_in_a_row(client, settings):
    settings.GPMAS_SOFT_BOUNCES_TO_SUPPRESS = 3
    for _ in range(2):
        bounce(client, new_job(to_email="full@example.com"), kind="blocked")
    post_sendgrid(client, [sendgrid_event(new_job(to_email="full@example.com"))])  # delivered
    bounce(client, new_job(to_email="full@example.com"), kind="blocked")
    assert not Suppression.objects.exists()

    bounce(client, new_job(to_email="full@example.com"), kind="blocked")
    post_sendgrid(client, [sendgrid_event(new_job(to_email="full@example.com"), event="deferred")])
    bounce(client, new_job(to_email="full@example.com"), kind="blocked")

    assert Suppression.objects.get().reason == Suppression.Reason.SOFT_BOUNCES


def test_after_a_lift_the_soft_bounces_are_counted_again_from_nothing(client, settings):
    settings.GPMAS_SOFT_BOUNCES_TO_SUPPRESS = 2
    for _ in range(2):
        bounce(client, new_job(to_email="full@example.com"), kind="blocked")
    suppression.lift(Suppression.objects.all(), by=None, source="test", reason="mailbox emptied")

    bounce(client, new_job(to_email="full@example.com"), kind="blocked")

    assert not Suppression.objects.filter(lifted_at__isnull=True).exists()
    bounce(client, new_job(to_email="full@example.com"), kind="blocked")
    assert Suppression.objects.filter(lifted_at__isnull=True).count() == 1


def test_an_expired_suppression_no_longer_applies(client):
    bounce(client, new_job(to_email="back@example.com"))
    Suppression.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert new_job(to_email="back@example.com").status == Status.QUEUED
    bounce(client, new_job(to_email="back@example.com"))  # bounces again: suppressed anew
    assert Suppression.objects.filter(lifted_at__isnull=True).count() == 1
    assert new_job(to_email="back@example.com").status == Status.SUPPRESSED


def test_an_admin_lifts_a_suppression_and_the_lift_is_audited(client, admin_client):
    bounce(client, new_job(to_email="fixed@example.com"))
    row = Suppression.objects.get()

    response = admin_client.post(
        "/admin/delivery/suppression/",
        {"action": "lift", "_selected_action": [row.pk]},
    )

    assert response.status_code == 302
    row.refresh_from_db()
    admin = get_user_model().objects.get(username="admin")
    assert row.lifted_at is not None and row.lifted_by == admin
    audit = SuppressionAudit.objects.order_by("id")
    assert list(audit.values_list("action", "address")) == [
        ("suppress", "fixed@example.com"),
        ("lift", "fixed@example.com"),
    ]
    assert audit.last().changed_by == admin and audit.last().source.startswith("admin from")
    assert suppression.blocked(["fixed@example.com"]) == {}
    assert new_job(to_email="fixed@example.com").status == Status.QUEUED


def test_the_admin_lists_suppressions_with_reason_and_source(client, admin_client):
    bounce(client, new_job(to_email="listed@example.com"))
    page = admin_client.get("/admin/delivery/suppression/").content.decode()
    assert "listed@example.com" in page and "hard bounce" in page and "sendgrid bounced" in page
    assert admin_client.get("/admin/delivery/deliveryevent/").status_code == 200
    assert admin_client.get("/admin/delivery/suppressionaudit/").status_code == 200


def test_gpmas_status_counts_events_unmatched_ones_and_suppressions(client, providers, capsys):
    from django.core.management import call_command

    bounce(client, new_job(to_email="counted@example.com"))
    post_sendgrid(client, [sendgrid_event(None, email="stranger@example.com")])

    call_command("gpmas", "status")

    out = capsys.readouterr().out
    assert "delivery events (24 h): 2, 1 matching no job; suppressed addresses: 1" in out
    # The new job status is in the queue line: the bounced job had not been sent in this test,
    # so it was still waiting, and was suppressed with its address.
    assert "suppressed 1" in out


def test_jobs_still_waiting_are_suppressed_with_their_address(client, sendgrid, clean_sandbox):
    reminder = new_job(to_email="Later@Example.com", kind="reminder")
    confirmation = new_job(to_email="later@example.com", kind="confirmation")
    other = new_job(to_email="other@example.com")

    bounce(client, new_job(to_email="later@example.com"))

    reminder.refresh_from_db()
    assert (reminder.status, reminder.finished_at is not None) == (Status.SUPPRESSED, True)
    assert "suppressed (hard_bounce)" in reminder.last_error
    jobs_send(job_ids=[reminder.pk, confirmation.pk, other.pk])
    assert EmailJob.objects.get(pk=confirmation.pk).status == Status.SENT  # the guest's answer
    assert EmailJob.objects.get(pk=other.pk).status == Status.SENT
    assert EmailJob.objects.get(pk=reminder.pk).status == Status.SUPPRESSED
    sent_to = sorted(m.to[0] for m in clean_sandbox.inbox.messages("sendgrid"))
    assert sent_to == ["later@example.com", "other@example.com"]
