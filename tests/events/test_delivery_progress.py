"""What an organizer reads about their emails (issue #17, item 3): an email due later is
"scheduled for 18 Dec" (in the event's zone), apart from one waiting to send; the counts and the
guest list's delivery column use the same words."""

import datetime as dt
import zoneinfo

import pytest
from django.urls import reverse
from django.utils import timezone

from delivery.models import EmailJob
from delivery.progress import job_progress
from invitations.models import Invitation
from invitations.services import invitation_accept
from tests.events.factories import make_event, tokens

UTC = dt.UTC
AUCKLAND = zoneinfo.ZoneInfo("Pacific/Auckland")
NOW = dt.datetime(2030, 11, 1, 12, 0, tzinfo=UTC)


def read(status, not_before=None, *, now=NOW, tz=AUCKLAND) -> str | None:
    progress = job_progress(status, not_before, now=now, tz=tz)
    return progress and f"{progress.code}: {progress.label}"


def test_each_job_state_reads_as_the_organizer_understands_it():
    later = dt.datetime(2030, 12, 17, 23, 0, tzinfo=UTC)  # 18 Dec in Auckland
    assert read("queued", later) == "scheduled: scheduled for 18 Dec"
    assert read("queued", later, tz=UTC) == "scheduled: scheduled for 17 Dec"
    assert read("queued", dt.datetime(2031, 1, 5, tzinfo=UTC)) == (
        "scheduled: scheduled for 5 Jan 2031"
    )
    assert read("queued") == "waiting: waiting to send"
    assert read("queued", NOW - dt.timedelta(minutes=1)) == "waiting: waiting to send"
    assert read("retrying") == "waiting: waiting to send"  # retries are not the organizer's care
    assert read("sending") == "sending: sending"
    assert read("sent") == "sent: sent"
    assert read("failed") == "failed: failed"
    assert read("cancelled") == "cancelled: cancelled"
    assert read(None) is None


@pytest.mark.django_db
def test_the_event_page_counts_scheduled_apart_from_waiting(organizer_client, organizer):
    event = make_event(organizer, guests=2, timezone="Pacific/Auckland")
    invitation_accept(token=tokens(event)["guest0@example.com"], party_size=1)
    reminder = EmailJob.objects.get(kind="reminder")
    EmailJob.objects.filter(kind="invitation", to_email="guest1@example.com").update(
        status="sending", lease_expires_at=timezone.now() + dt.timedelta(minutes=5)
    )
    page = organizer_client.get(reverse("event_detail", args=[event.pk])).content.decode()
    day = reminder.not_before.astimezone(AUCKLAND)
    assert '<strong id="count-scheduled">1</strong> scheduled' in page
    assert f"(next {day.day} {day:%b}" in page
    # the invitation to guest0 and the confirmation of their answer
    assert '<strong id="count-waiting">2</strong> waiting to send' in page
    assert '<strong id="count-sending">1</strong> sending' in page
    dashboard = organizer_client.get(reverse("dashboard")).content.decode()
    assert "1 scheduled (next" in dashboard and "2 waiting to send" in dashboard
    assert "queued" not in dashboard


@pytest.mark.django_db
def test_the_delivery_column_and_filter_say_scheduled_with_the_date(organizer_client, organizer):
    event = make_event(organizer, guests=2, timezone="Pacific/Auckland")
    later = timezone.now() + dt.timedelta(days=20)
    invitation = Invitation.objects.get(email="guest1@example.com")
    EmailJob.objects.filter(pk=invitation.email_job_id).update(not_before=later)
    url = reverse("event_detail", args=[event.pk])
    page = organizer_client.get(url).content.decode()
    day = later.astimezone(AUCKLAND)
    label = f"scheduled for {day.day} {day:%b}"
    row = page.split(f'id="guest-{invitation.pk}"', 1)[1].split("</tr>", 1)[0]
    assert f'<span class="status scheduled">{label}' in row
    shown = organizer_client.get(url, {"delivery": "scheduled"}).context["guests"]
    assert [guest.email for guest in shown] == ["guest1@example.com"]
    shown = organizer_client.get(url, {"delivery": "waiting to send"}).context["guests"]
    assert [guest.email for guest in shown] == ["guest0@example.com"]
