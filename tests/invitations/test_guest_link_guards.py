"""What the guest's link refuses, changing nothing: dead and unknown links, forged posts and
answers by GET, a busy invitation lock, too many answers from one address; and answers still
working on the database alone when Redis is down."""

import datetime as dt

import pytest
import redis
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from events.models import Event
from invitations.models import Invitation
from reliability import locks
from tests.events.factories import tokens
from tests.invitations.helpers import accept, decline, page, snapshot

pytestmark = pytest.mark.django_db
Rsvp = Invitation.Rsvp


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
