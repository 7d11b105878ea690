"""Seats and the waitlist: a full event waitlists the guest, a decline or a smaller party
promotes the waitlist in order, and a larger party that does not fit keeps what it had."""

import pytest
from icalendar import Calendar

from delivery.models import EmailJob
from events.models import Event
from invitations.models import Invitation
from invitations.services import invitation_accept, invitation_decline
from tests.events.factories import jobs, tokens
from tests.invitations.helpers import accept, page, snapshot

pytestmark = pytest.mark.django_db
Rsvp = Invitation.Rsvp


def test_a_full_event_waitlists_the_guest_and_says_so(client, event):
    links = tokens(event)
    accept(client, links["guest0@example.com"], party_size=3)
    accept(client, links["guest1@example.com"], party_size=1)
    guest1 = Invitation.objects.get(email="guest1@example.com")
    assert guest1.rsvp == Rsvp.WAITLISTED
    [waitlist] = jobs("waitlist")
    assert waitlist.to_email == "guest1@example.com" and "place 1" in waitlist.text_body
    body = client.get(page(links["guest1@example.com"])).content.decode()
    assert "On the waitlist" in body and "place 1" in body
    assert Event.objects.get(pk=event.pk).seats_taken == 3


def test_a_decline_promotes_waitlisted_guests_in_order_and_emails_them(event):
    links = tokens(event)
    invitation_accept(token=links["guest0@example.com"], party_size=3)
    invitation_accept(token=links["guest1@example.com"], party_size=2)  # waitlist 1st
    invitation_accept(token=links["guest2@example.com"], party_size=1)  # waitlist 2nd
    invitation_accept(token=links["guest3@example.com"], party_size=1)  # waitlist 3rd
    answer = invitation_decline(token=links["guest0@example.com"])
    assert answer.outcome == "declined"
    rsvps = dict(Invitation.objects.values_list("email", "rsvp"))
    assert rsvps == {
        "guest0@example.com": Rsvp.DECLINED,
        "guest1@example.com": Rsvp.ACCEPTED,
        "guest2@example.com": Rsvp.ACCEPTED,
        "guest3@example.com": Rsvp.WAITLISTED,
    }
    assert [j.to_email for j in jobs("promotion")] == ["guest1@example.com", "guest2@example.com"]
    assert Calendar.from_ical(jobs("promotion")[0].ics)["METHOD"] == "REQUEST"
    assert Event.objects.get(pk=event.pk).seats_taken == 3


def test_the_waitlist_is_first_come_first_served(event):
    links = tokens(event)
    invitation_accept(token=links["guest0@example.com"], party_size=2)
    invitation_accept(token=links["guest1@example.com"], party_size=1)  # fills the last seat
    invitation_accept(token=links["guest2@example.com"], party_size=3)  # waits for 3 seats
    invitation_decline(token=links["guest1@example.com"])  # 1 seat free: not enough for 3
    answer = invitation_accept(token=links["guest3@example.com"], party_size=1)
    assert answer.outcome == "waitlisted"  # does not overtake guest2
    invitation_decline(token=links["guest0@example.com"])  # now 3 free: guest2, then guest3
    assert jobs("promotion")[0].to_email == "guest2@example.com"
    assert Invitation.objects.get(email="guest3@example.com").rsvp == Rsvp.WAITLISTED


def test_a_smaller_party_frees_seats_for_the_waitlist(event):
    links = tokens(event)
    invitation_accept(token=links["guest0@example.com"], party_size=3)
    invitation_accept(token=links["guest1@example.com"], party_size=2)
    assert invitation_accept(token=links["guest0@example.com"], party_size=1).outcome == "accepted"
    assert Invitation.objects.get(email="guest1@example.com").rsvp == Rsvp.ACCEPTED
    assert Event.objects.get(pk=event.pk).seats_taken == 3
    # The first confirmation (party of 3) had not gone out yet: only the new one will.
    statuses = [j.status for j in jobs("confirmation", to_email="guest0@example.com")]
    assert statuses == [EmailJob.Status.CANCELLED, EmailJob.Status.QUEUED]


def test_a_larger_party_that_does_not_fit_keeps_the_acceptance_as_it_was(client, event):
    links = tokens(event)
    invitation_accept(token=links["guest0@example.com"], party_size=1)
    invitation_accept(token=links["guest1@example.com"], party_size=2)
    before = snapshot()
    response = accept(client, links["guest0@example.com"], party_size=2)
    assert response.status_code == 409
    assert "not enough free seats" in response.content.decode()
    assert snapshot() == before
