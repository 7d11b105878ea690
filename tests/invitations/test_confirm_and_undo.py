"""Resend and revoke ask first, saying what will happen; a revoke can be undone for a while
(issue #17, item 4). GET never changes anything; an undo that cannot be done answers 409 and
changes nothing."""

import datetime as dt

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from delivery.models import EmailJob
from events.models import Event
from invitations.models import Invitation
from invitations.services import invitation_accept, invitation_revoke
from tests.events.factories import invite, make_event, token_of, tokens

pytestmark = pytest.mark.django_db


@pytest.fixture
def event(organizer):
    event = make_event(organizer, guests=["bob@example.com"], capacity=3, plus_ones_allowed=2)
    Invitation.objects.filter(email="bob@example.com").update(name="Bob")
    return event


def bob() -> Invitation:
    return Invitation.objects.get(email="bob@example.com", event__isnull=False)


def url(name: str, invitation: Invitation) -> str:
    return reverse(name, args=[invitation.event_id, invitation.pk])


def state() -> tuple:
    return (
        list(Invitation.objects.order_by("id").values()),
        list(EmailJob.objects.order_by("id").values("id", "status")),
        list(Event.objects.values("seats_taken")),
    )


def test_revoke_asks_first_saying_whose_link_stops_working(organizer_client, event):
    before = state()
    page = organizer_client.get(url("invitation_revoke", bob())).content.decode()
    assert "Revoke the invitation of Bob?" in page
    assert "bob@example.com" in page
    assert "Bob’s link will stop working" in page
    assert 'method="post"' in page and "csrfmiddlewaretoken" in page
    assert state() == before


def test_resend_asks_first_saying_the_current_link_stops_working(organizer_client, event):
    before = state()
    page = organizer_client.get(url("invitation_resend", bob())).content.decode()
    assert "Bob’s current link will stop working" in page
    assert "A new invitation email with a new link goes to bob@example.com" in page
    assert state() == before


def test_the_actions_need_the_csrf_token(organizer, event):
    client = Client(enforce_csrf_checks=True)
    client.force_login(organizer)
    before = state()
    for name in ("invitation_revoke", "invitation_resend", "invitation_unrevoke"):
        assert client.post(url(name, bob())).status_code == 403
    assert state() == before


def test_the_guest_list_links_to_the_confirmation_not_a_one_click_post(organizer_client, event):
    page = organizer_client.get(reverse("event_detail", args=[event.pk])).content.decode()
    row = page.split(f'id="guest-{bob().pk}"', 1)[1].split("</tr>", 1)[0]
    assert f'href="{url("invitation_revoke", bob())}?next=' in row
    assert f'href="{url("invitation_resend", bob())}?next=' in row
    assert "<form" not in row


def test_undo_brings_an_accepted_guest_back_with_seats_link_and_reminder(organizer_client, event):
    token = tokens(event)["bob@example.com"]
    invitation_accept(token=token, party_size=2)
    EmailJob.objects.filter(kind="invitation").update(status="sent", finished_at=timezone.now())
    response = organizer_client.post(url("invitation_revoke", bob()))
    assert response.status_code == 302
    assert Event.objects.get().seats_taken == 0
    page = organizer_client.get(reverse("event_detail", args=[event.pk])).content.decode()
    assert "Undo revoke of Bob" in page
    assert organizer_client.get(url("invitation_unrevoke", bob())).status_code == 405
    response = organizer_client.post(url("invitation_unrevoke", bob()), follow=True)
    assert "is back, as it was before the revoke" in response.content.decode()
    again = bob()
    assert (again.revoked_at, again.rsvp, again.party_size) == (None, "accepted", 2)
    assert Event.objects.get().seats_taken == 2
    assert Client().get(reverse("guest_invitation", args=[token])).status_code == 200
    reminder = EmailJob.objects.get(pk=again.reminder_job_id)
    assert reminder.status == "queued" and reminder.not_before > timezone.now()


def test_undo_sends_a_new_link_when_the_invitation_email_never_went_out(organizer_client, event):
    old_job = bob().email_job_id
    invitation_revoke(invitation=bob())
    assert EmailJob.objects.get(pk=old_job).status == "cancelled"
    assert organizer_client.post(url("invitation_unrevoke", bob())).status_code == 302
    job = EmailJob.objects.get(pk=bob().email_job_id)
    assert job.pk != old_job and job.status == "queued"
    assert Client().get(reverse("guest_invitation", args=[token_of(bob())])).status_code == 200


def refused(client, invitation: Invitation, text: str) -> None:
    before = state()
    response = client.post(url("invitation_unrevoke", invitation))
    assert response.status_code == 409
    assert text in response.content.decode()
    assert state() == before


def test_undo_after_the_window_is_refused(organizer_client, event, settings):
    settings.GPMAS_REVOKE_UNDO_SECONDS = 300
    invitation_revoke(invitation=bob())
    Invitation.objects.update(revoked_at=timezone.now() - dt.timedelta(seconds=301))
    refused(organizer_client, bob(), "Too late to undo")
    page = organizer_client.get(reverse("event_detail", args=[event.pk])).content.decode()
    assert "Undo revoke" not in page


def test_undo_of_an_invitation_not_revoked_is_refused(organizer_client, event):
    refused(organizer_client, bob(), "not revoked")


def test_undo_when_the_seats_went_to_the_waitlist_is_refused(organizer_client, event):
    invite(event, "ann@example.com")
    invitation_accept(token=tokens(event)["bob@example.com"], party_size=3)
    invitation_accept(token=tokens(event)["ann@example.com"], party_size=2)  # waitlisted
    invitation_revoke(invitation=bob())  # Ann gets the seats
    assert Invitation.objects.get(email="ann@example.com").rsvp == "accepted"
    refused(organizer_client, bob(), "Their seats have gone to another guest")


def test_undo_when_the_guest_was_invited_again_is_refused(organizer_client, event):
    invitation_revoke(invitation=bob())
    invite(event, "bob@example.com")
    revoked = Invitation.objects.get(email="bob@example.com", revoked_at__isnull=False)
    refused(organizer_client, revoked, "has been invited again already")


def test_another_organizer_cannot_undo(outsider_client, event):
    invitation_revoke(invitation=bob())
    before = state()
    assert outsider_client.post(url("invitation_unrevoke", bob())).status_code == 404
    assert state() == before


def test_a_revoked_invitation_is_not_offered_again(organizer_client, event):
    invitation_revoke(invitation=bob())
    for name in ("invitation_revoke", "invitation_resend"):
        response = organizer_client.get(url(name, bob()))
        assert response.status_code == 409
        assert "revoked already" in response.content.decode()
