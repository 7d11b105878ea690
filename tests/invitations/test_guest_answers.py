"""The guest's link: GET shows, POST (with CSRF) answers; the confirmation and its calendar
request, party sizes, changing the answer until the deadline, reminders."""

import datetime as dt

import pytest
from django.utils import timezone
from icalendar import Calendar

from delivery.models import EmailJob
from events.models import Event
from invitations.models import Invitation
from invitations.services import invitation_accept, invitation_decline
from tests.events.factories import jobs, make_event, tokens
from tests.invitations.helpers import accept, decline, page, snapshot

pytestmark = pytest.mark.django_db
Rsvp = Invitation.Rsvp


def test_the_page_shows_the_event_in_its_own_zone_and_changes_nothing(client, event, token):
    before = snapshot()
    for _ in range(3):  # a mail scanner, a preview pane, the guest
        response = client.get(page(token))
        assert response.status_code == 200
    body = response.content.decode()
    local_start = event.starts_at.astimezone(event.tzinfo)
    assert event.title in body and event.location in body and "olivia" in body
    assert f"{local_start:%H:%M}" in body and "(Europe/Berlin)" in body
    assert "You have not answered yet" in body
    assert 'name="csrfmiddlewaretoken"' in body
    assert response["X-Robots-Tag"] == "noindex" and "no-cache" in response["Cache-Control"]
    assert snapshot() == before


def test_accepting_confirms_with_an_icalendar_request_with_a_stable_uid(client, event, token):
    response = accept(client, token, party_size=2)
    assert response.status_code == 302 and response["Location"] == page(token)
    invitation = Invitation.objects.get(email="guest0@example.com")
    assert (invitation.rsvp, invitation.party_size) == (Rsvp.ACCEPTED, 2)
    assert Event.objects.get(pk=event.pk).seats_taken == 2
    [confirmation] = jobs("confirmation")
    assert confirmation.to_email == "guest0@example.com" and confirmation.topic == event.topic
    assert confirmation.idempotency_key == f"confirmation:{invitation.pk}:1"
    calendar = Calendar.from_ical(confirmation.ics)
    assert calendar["METHOD"] == "REQUEST"
    [entry] = calendar.walk("VEVENT")
    assert str(entry["UID"]) == f"event-{event.pk}-inv-{invitation.pk}@gpmas"
    assert entry["SEQUENCE"] == event.sequence
    assert entry.decoded("DTSTART") == event.starts_at
    followed = client.get(page(token))
    assert "Going" in followed.content.decode()


def test_accepting_twice_gives_one_acceptance_and_one_confirmation(client, token):
    accept(client, token)
    before = snapshot()
    response = accept(client, token)  # the second click, or the second tab
    assert response.status_code == 302
    assert snapshot() == before
    assert len(jobs("confirmation")) == 1


def test_a_party_larger_than_the_plus_ones_allowed_is_refused(client, token):
    before = snapshot()
    for party_size in (0, 4, "two", ""):
        response = accept(client, token, party_size=party_size)
        assert response.status_code == 400
    assert snapshot() == before
    with pytest.raises(Exception, match="party of 1 to 3"):
        invitation_accept(token=token, party_size=4)
    assert snapshot() == before


def test_guests_may_change_their_answer_until_the_deadline(client, organizer):
    starts = timezone.now() + dt.timedelta(days=5)
    deadline = timezone.now() + dt.timedelta(days=1)
    ends = starts + dt.timedelta(hours=2)
    event = make_event(organizer, guests=1, starts_at=starts, ends_at=ends, rsvp_deadline=deadline)
    token = tokens(event)["guest0@example.com"]
    assert accept(client, token).status_code == 302
    assert decline(client, token).status_code == 302
    assert accept(client, token).status_code == 302
    Event.objects.filter(pk=event.pk).update(rsvp_deadline=timezone.now() - dt.timedelta(minutes=1))
    before = snapshot()
    response = decline(client, token)
    assert response.status_code == 410
    assert "Answers are closed" in response.content.decode()
    assert accept(client, token, party_size=1).status_code == 410
    assert snapshot() == before
    shown = client.get(page(token))
    assert shown.status_code == 200 and "Answers closed on" in shown.content.decode()


def test_a_decline_cancels_the_reminder_and_the_unsent_confirmation(token):
    invitation_accept(token=token, party_size=1)
    [reminder] = jobs("reminder")
    invitation_decline(token=token)
    reminder.refresh_from_db()
    assert reminder.status == EmailJob.Status.CANCELLED
    assert jobs("confirmation")[0].status == EmailJob.Status.CANCELLED


def test_the_reminder_is_due_the_configured_offset_before_the_start(settings, event, token):
    settings.GPMAS_REMINDER_OFFSET_SECONDS = 3 * 3600
    invitation_accept(token=token, party_size=1)
    [reminder] = jobs("reminder")
    assert reminder.not_before == event.starts_at - dt.timedelta(hours=3)
    assert reminder.next_attempt_at == reminder.not_before
    assert reminder.topic == event.topic
