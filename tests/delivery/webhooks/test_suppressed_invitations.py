"""A suppressed guest's invitation is visible where jobs are: the guest list shows it (and
filters on it), the dashboard counts it as not sent."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from delivery import progress, suppression
from delivery.models import EmailJob, Suppression
from events.selectors import delivery_counts
from invitations.selectors import guest_list
from tests.events.factories import make_event

pytestmark = pytest.mark.django_db


def test_an_invitation_to_a_suppressed_address_is_listed_and_counted(organizer):
    suppression.suppress("Gone@Example.com", Suppression.Reason.HARD_BOUNCE)

    event = make_event(organizer, guests=["gone@example.com", "ok@example.com"])

    statuses = {guest.email: guest.delivery_status for guest in guest_list(event)}
    assert statuses == {"gone@example.com": "suppressed", "ok@example.com": "queued"}
    [listed] = guest_list(event, delivery="suppressed")
    assert listed.email == "gone@example.com"
    counts = delivery_counts([event])[event.pk]
    assert (counts["waiting"], counts["sent"], counts["failed"]) == (1, 0, 1)
    read = progress.job_progress("suppressed", None, now=timezone.now(), tz=dt.UTC)
    assert (read.code, read.label) == ("suppressed", "suppressed")
    job = EmailJob.objects.get(to_email="gone@example.com")
    assert job.kind == "invitation" and "hard_bounce" in job.last_error


def test_the_event_page_shows_and_filters_a_suppressed_guest(organizer, organizer_client):
    suppression.suppress("gone@example.com", Suppression.Reason.COMPLAINT)
    event = make_event(organizer, guests=["gone@example.com", "ok@example.com"])

    page = organizer_client.get(f"/events/{event.pk}/", {"delivery": "suppressed"})
    live = organizer_client.get(f"/events/{event.pk}/live/")

    assert page.status_code == 200 and live.status_code == 200
    body = page.content.decode()
    assert "gone@example.com" in body and "ok@example.com" not in body
    assert dashboard_ok(organizer_client)


def dashboard_ok(client) -> bool:
    return client.get("/").status_code == 200
