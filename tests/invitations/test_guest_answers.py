"""The guest's link: GET shows, POST (with CSRF) answers; seats, waitlist, promotion, reminders."""

import datetime as dt

import pytest
import redis
from django.db import IntegrityError, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from icalendar import Calendar

from delivery.models import EmailJob
from events.models import Event
from invitations.models import Invitation
from invitations.services import invitation_accept, invitation_decline
from reliability import locks
from tests.events.factories import jobs, make_event, token_of, tokens

pytestmark = pytest.mark.django_db
Rsvp = Invitation.Rsvp


def page(token: str) -> str:
    return reverse("guest_invitation", args=[token])


def accept(client: Client, token: str, party_size: int = 1):
    return client.post(reverse("guest_accept", args=[token]), {"party_size": party_size})


def decline(client: Client, token: str):
    return client.post(reverse("guest_decline", args=[token]))


def snapshot() -> tuple:
    """Everything an answer could change."""
    return (
        list(Invitation.objects.order_by("id").values_list("rsvp", "party_size", "revoked_at")),
        list(Event.objects.order_by("id").values_list("seats_taken", "status", "sequence")),
        EmailJob.objects.count(),
    )


@pytest.fixture
def event(organizer):
    return make_event(organizer, guests=4, capacity=3, plus_ones_allowed=2)


@pytest.fixture
def token(event):
    return tokens(event)["guest0@example.com"]


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


def cancel_event(invitation: Invitation) -> None:
    Event.objects.filter(pk=invitation.event_id).update(status="cancelled")


def revoke(invitation: Invitation) -> None:
    Invitation.objects.filter(pk=invitation.pk).update(revoked_at=timezone.now())


def end_event(invitation: Invitation) -> None:
    now = timezone.now()
    Event.objects.filter(pk=invitation.event_id).update(
        starts_at=now - dt.timedelta(hours=3), ends_at=now - dt.timedelta(hours=1)
    )


@pytest.mark.parametrize(
    ("spoil", "title"),
    [
        (cancel_event, "Event cancelled"),
        (revoke, "Invitation withdrawn"),
        (end_event, "Event over"),
    ],
)
def test_dead_links_get_a_clear_page_and_change_nothing(client, event, token, spoil, title):
    spoil(Invitation.objects.get(email="guest0@example.com"))
    before = snapshot()
    for response in (client.get(page(token)), accept(client, token), decline(client, token)):
        assert response.status_code == 410
        assert title in response.content.decode()
    assert snapshot() == before


def test_an_unknown_link_is_404_and_changes_nothing(client, event):
    before = snapshot()
    for token in ("x" * 43, "nope", "a" * 500):
        assert client.get(page(token)).status_code == 404
        response = accept(client, token)
        assert response.status_code == 404
        assert "Invitation not found" in response.content.decode()
    assert snapshot() == before


def test_a_forged_post_without_csrf_is_refused(event, token):
    before = snapshot()
    forger = Client(enforce_csrf_checks=True)
    assert forger.post(reverse("guest_accept", args=[token]), {"party_size": 1}).status_code == 403
    assert forger.post(reverse("guest_decline", args=[token])).status_code == 403
    assert snapshot() == before
    # The same browser with the token from the page gets through.
    forger.get(page(token))
    csrf = forger.cookies["csrftoken"].value
    response = forger.post(
        reverse("guest_accept", args=[token]), {"party_size": 1, "csrfmiddlewaretoken": csrf}
    )
    assert response.status_code == 302


def test_answer_urls_refuse_get(client, token):
    before = snapshot()
    assert client.get(reverse("guest_accept", args=[token])).status_code == 405
    assert client.get(reverse("guest_decline", args=[token])).status_code == 405
    assert client.post(page(token)).status_code == 405
    assert snapshot() == before


def test_a_busy_invitation_lock_answers_409_and_changes_nothing(client, settings, token):
    settings.GPMAS_LOCK_WAIT_SECONDS = 0.2
    invitation = Invitation.objects.get(email="guest0@example.com")
    before = snapshot()
    with locks.hold(f"invitation:{invitation.pk}"):
        response = accept(client, token)
    assert response.status_code == 409
    assert "try again" in response.content.decode()
    assert snapshot() == before


def test_without_redis_answers_still_work_on_the_database_alone(client, monkeypatch, token, caplog):
    def unreachable(*args, **kwargs):
        raise redis.ConnectionError("Redis is down")

    monkeypatch.setattr(locks.redis_lock, "Lock", unreachable)
    monkeypatch.setattr("invitations.views.is_ratelimited", unreachable)
    assert accept(client, token).status_code == 302
    assert Invitation.objects.get(email="guest0@example.com").rsvp == Rsvp.ACCEPTED
    assert "relying on database guards alone" in caplog.text


def test_too_many_answers_from_one_address_get_429(client, settings, event):
    settings.GPMAS_GUEST_RATE_LIMIT = "3/m"
    token = tokens(event)["guest0@example.com"]
    assert [accept(client, token).status_code for _ in range(3)] == [302, 302, 302]
    before = snapshot()
    response = decline(client, token)
    assert response.status_code == 429
    assert snapshot() == before


def test_the_database_refuses_a_party_below_one_and_seats_above_capacity(event, token):
    invitation = Invitation.objects.get(email="guest0@example.com")
    with pytest.raises(IntegrityError), transaction.atomic():
        Invitation.objects.filter(pk=invitation.pk).update(party_size=0)
    with pytest.raises(IntegrityError), transaction.atomic():
        Event.objects.filter(pk=event.pk).update(seats_taken=4)  # capacity 3


def test_the_database_allows_one_live_invitation_per_address(event):
    invitation = Invitation.objects.get(email="guest0@example.com")
    duplicate = Invitation(event=event, email=invitation.email, token_hash="0" * 64)
    with pytest.raises(IntegrityError), transaction.atomic():
        duplicate.save()
    Invitation.objects.filter(pk=invitation.pk).update(revoked_at=timezone.now())
    duplicate.save()  # the revoked one no longer counts


def test_the_link_is_the_only_copy_of_the_token(event):
    invitation = Invitation.objects.get(email="guest0@example.com")
    token = token_of(invitation)
    assert token not in invitation.token_hash and len(invitation.token_hash) == 64
    assert len(token) >= 43  # 256 bits, url-safe base64
