"""The event page stays current without a reload (issue #17, item 8): /events/<id>/live/ gives its
counts and the rows of the guests it shows, rendered by the page's own templates."""

import pytest
from django.urls import reverse
from django.utils import timezone

from delivery.models import EmailJob
from invitations.models import Invitation
from invitations.services import invitation_accept
from tests.events.factories import invite, make_event, tokens

pytestmark = pytest.mark.django_db


def live(client, event, guests, **extra):
    ids = ",".join(str(guest.pk) for guest in guests)
    return client.get(reverse("event_live", args=[event.pk]), {"ids": ids, **extra})


def test_answers_and_delivery_show_up_in_the_live_rows_and_counts(organizer_client, organizer):
    event = make_event(organizer, guests=2)
    guests = list(Invitation.objects.order_by("id"))
    before = live(organizer_client, event, guests).json()
    assert '<strong id="count-accepted">0</strong>' in before["counts"]
    invitation_accept(token=tokens(event)["guest0@example.com"], party_size=1)
    EmailJob.objects.filter(pk=guests[1].email_job_id).update(
        status="sent", finished_at=timezone.now()
    )
    body = live(organizer_client, event, guests).json()
    assert '<strong id="count-accepted">1</strong>' in body["counts"]
    assert '<strong id="count-sent">1</strong>' in body["counts"]
    rows = body["rows"]
    assert set(rows) == {str(guests[0].pk), str(guests[1].pk)}
    assert '<span class="status accepted">Accepted</span>' in rows[str(guests[0].pk)]
    assert '<span class="status sent">sent</span>' in rows[str(guests[1].pk)]
    # The same template as the page: a row fetched live is the row the page would show now.
    page = organizer_client.get(reverse("event_detail", args=[event.pk])).content.decode()
    assert rows[str(guests[0].pk)].strip() in page


def test_only_the_organizer_gets_it_and_only_their_guests(
    organizer_client, outsider_client, client, organizer, outsider
):
    event = make_event(organizer, guests=1)
    other = make_event(outsider, guests=1)
    theirs = Invitation.objects.get(event=other)
    assert live(outsider_client, event, []).status_code == 404
    assert live(client, event, []).status_code == 302  # to the login page
    body = live(organizer_client, event, [theirs]).json()
    assert body["rows"] == {}
    response = organizer_client.get(reverse("event_live", args=[event.pk]), {"ids": "x,1;2,"})
    assert response.status_code == 200 and response.json()["rows"] == {}


def test_the_query_count_does_not_grow_with_the_guests_shown(
    organizer_client, organizer, django_assert_num_queries
):
    event = make_event(organizer, guests=2)
    live(organizer_client, event, [])
    guests = list(Invitation.objects.all())
    with django_assert_num_queries(6) as few:  # session, user, event, 2 counts, the rows
        live(organizer_client, event, guests)
    invite(event, *[f"g{i}@example.com" for i in range(50)])
    guests = list(Invitation.objects.all())
    with django_assert_num_queries(len(few.captured_queries)):
        body = live(organizer_client, event, guests).json()
    assert len(body["rows"]) == 52


def test_the_page_polls_only_when_asked_to(organizer_client, organizer, settings):
    event = make_event(organizer, guests=1)
    url = reverse("event_detail", args=[event.pk])
    assert 'data-poll-ms="5000"' in organizer_client.get(url).content.decode()
    settings.GPMAS_LIVE_POLL_MS = 0
    assert "setInterval" not in organizer_client.get(url).content.decode()
