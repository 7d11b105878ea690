"""A provider's "unsubscribed" event for an invitation or reminder unsubscribes the address from
that job's organizer, as our own link does; for other mail it changes nothing more than the
job's delivery state."""

import pytest

from delivery.models import EmailJob, Unsubscribe
from invitations.models import Invitation
from tests.delivery.jobs import new_job
from tests.delivery.webhooks.posting import post_sendgrid, sendgrid_event
from tests.events.factories import invite, make_event

pytestmark = pytest.mark.django_db


def test_a_providers_unsubscribe_event_unsubscribes_from_the_jobs_organizer(client, organizer):
    event = make_event(organizer, guests=1)
    job = Invitation.objects.get(event=event).email_job

    response = post_sendgrid(client, [sendgrid_event(job, event="unsubscribe")])

    assert response.status_code == 200
    row = Unsubscribe.objects.get()
    assert (row.organizer, row.address, row.source) == (
        organizer,
        "guest0@example.com",
        "webhook sendgrid",
    )
    [later] = invite(make_event(organizer), "guest0@example.com")
    assert EmailJob.objects.get(pk=later.email_job_id).status == EmailJob.Status.SUPPRESSED


def test_an_unsubscribe_event_for_mail_without_a_list_owner_unsubscribes_nobody(client):
    job = new_job(to_email="someone@example.com")

    response = post_sendgrid(client, [sendgrid_event(job, event="unsubscribe")])

    assert response.status_code == 200
    assert not Unsubscribe.objects.exists()
    job.refresh_from_db()
    assert job.delivery_state == EmailJob.DeliveryState.UNSUBSCRIBED
