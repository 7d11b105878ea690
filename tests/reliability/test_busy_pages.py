"""A request that cannot get its lock in time gets a clear 409 page and changes nothing."""

import pytest
from django.urls import reverse

from events.models import Event
from invitations.models import Invitation
from reliability import locks
from tests.events.factories import make_event, tokens

pytestmark = pytest.mark.django_db


@pytest.fixture
def short_lock_wait(settings):
    settings.GPMAS_LOCK_WAIT_SECONDS = 0.2


def test_deleting_an_event_whose_lock_is_busy_is_a_409_that_changes_nothing(
    client, organizer, short_lock_wait
):
    event = make_event(organizer, guests=2)
    client.force_login(organizer)
    with locks.hold(f"event:{event.pk}"):
        response = client.post(reverse("event_delete", args=[event.pk]))
    assert response.status_code == 409
    assert b"try again" in response.content.lower()
    assert Event.objects.filter(pk=event.pk).exists()
    assert Invitation.objects.filter(event=event).count() == 2


def test_accepting_while_the_invitation_lock_is_busy_is_a_409_that_changes_nothing(
    client, organizer, short_lock_wait
):
    event = make_event(organizer, guests=1)
    token = next(iter(tokens(event).values()))
    invitation = Invitation.objects.get(event=event)
    with locks.hold(f"invitation:{invitation.pk}"):
        response = client.post(reverse("guest_accept", args=[token]), {"party_size": "1"})
    assert response.status_code == 409
    assert b"try again" in response.content.lower()
    invitation.refresh_from_db()
    assert invitation.rsvp == "pending"
