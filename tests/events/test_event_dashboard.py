"""The organizer's dashboard and an event's guest list: the counts shown, the filters, and query
counts that do not grow with events or guests."""

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from delivery.models import EmailJob
from events.models import Event
from invitations.models import Invitation
from invitations.services import invitation_accept, invitation_decline
from tests.events.factories import make_event, tokens

pytestmark = pytest.mark.django_db


def test_the_dashboard_lists_own_events_upcoming_first_with_counts(
    organizer_client, organizer, outsider
):
    soon = make_event(organizer, title="Soon", guests=3, capacity=1)
    later_start = timezone.now() + dt.timedelta(days=30)
    later = make_event(
        organizer, title="Later", starts_at=later_start, ends_at=later_start + dt.timedelta(hours=1)
    )
    past = make_event(organizer, title="Past")
    Event.objects.filter(pk=past.pk).update(
        starts_at=timezone.now() - dt.timedelta(days=3),
        ends_at=timezone.now() - dt.timedelta(days=2),
    )
    make_event(outsider, title="Not yours")
    links = tokens(soon)
    invitation_accept(token=links["guest0@example.com"], party_size=1)
    invitation_accept(token=links["guest1@example.com"], party_size=1)  # waitlisted
    invitation_decline(token=links["guest2@example.com"])
    EmailJob.objects.filter(kind="invitation", to_email="guest0@example.com").update(
        status="sent", finished_at=timezone.now()
    )
    EmailJob.objects.filter(kind="invitation", to_email="guest1@example.com").update(
        status="failed", finished_at=timezone.now()
    )
    response = organizer_client.get(reverse("dashboard"))
    events = response.context["events"]
    assert [e.title for e in events] == ["Soon", "Later", "Past"]
    first = events[0]
    counts = (
        first.invited_count,
        first.accepted_count,
        first.seats_taken,
        first.declined_count,
        first.waitlisted_count,
        first.pending_count,
    )
    assert counts == (3, 1, 1, 1, 1, 0)
    # Waiting to send: 1 invitation, 1 confirmation, 1 waitlist email; the reminder is scheduled
    # (delivery.progress): an email due later is not "queued" for the organizer.
    reminder = EmailJob.objects.get(kind="reminder", to_email="guest0@example.com")
    assert first.delivery == {
        "scheduled": 1,
        "next_scheduled": reminder.not_before,
        "waiting": 3,
        "sending": 0,
        "sent": 1,
        "failed": 1,
        "suppressed": 0,
        "after": {"delivered": 0, "delayed": 0, "bounced": 0, "complained": 0, "unsubscribed": 0},
    }
    assert "Not yours" not in response.content.decode()
    assert later.pk in [e.pk for e in events]


def test_the_dashboard_query_count_does_not_grow_with_events(
    organizer_client, organizer, django_assert_num_queries
):
    make_event(organizer, guests=2)
    organizer_client.get(reverse("dashboard"))  # warm up: session, user
    # session, user, the organizer's display name (events/profile.py: the middleware checks it,
    # the header shows it), events, delivery counts, and the banner (halt switch, the
    # organizer's own late emails: gpmas.notices)
    with django_assert_num_queries(7) as one:
        organizer_client.get(reverse("dashboard"))
    for _ in range(5):
        make_event(organizer, guests=3)
    with django_assert_num_queries(len(one.captured_queries)):
        response = organizer_client.get(reverse("dashboard"))
    assert len(response.context["events"]) == 6


def test_the_guest_list_query_count_does_not_grow_with_guests(
    organizer_client, organizer, django_assert_num_queries
):
    event = make_event(organizer, guests=2)
    url = reverse("event_detail", args=[event.pk])
    organizer_client.get(url)
    # 2 of them for the banner (halt switch, own late emails), 1 for the revokes still undoable,
    # 1 for the organizer's display name
    with django_assert_num_queries(11) as few:
        organizer_client.get(url)
    Invitation.objects.all().delete()
    from tests.events.factories import invite

    invite(event, *[f"g{i}@example.com" for i in range(60)])
    links = tokens(event)
    for email in list(links)[:20]:
        invitation_accept(token=links[email], party_size=1)
    with django_assert_num_queries(len(few.captured_queries)):
        response = organizer_client.get(url)
    assert response.content.decode().count("data-guest=") == 60


def test_the_guest_list_filters_by_answer_and_delivery(organizer_client, organizer):
    event = make_event(organizer, guests=4)
    links = tokens(event)
    invitation_accept(token=links["guest1@example.com"], party_size=1)
    EmailJob.objects.filter(to_email="guest2@example.com").update(
        status="failed", finished_at=timezone.now()
    )
    url = reverse("event_detail", args=[event.pk])

    def shown(**query):
        page = organizer_client.get(url, query).context["page"]
        return sorted(guest.email for guest in page.object_list)

    assert shown(rsvp="accepted") == ["guest1@example.com"]
    assert shown(delivery="failed") == ["guest2@example.com"]
    waiting = ["guest0@example.com", "guest3@example.com"]
    assert shown(rsvp="pending", delivery="waiting to send") == waiting
    assert shown(q="GUEST3") == ["guest3@example.com"]
    assert len(shown(rsvp="nonsense")) == 4
