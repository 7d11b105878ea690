"""The guest's page once they answer: add to calendar (.ics, Google, Outlook), a map link, one
form for Accept and Decline, no link to the organizer login, and a Referrer-Policy that keeps
the token off other sites."""

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client
from django.urls import reverse
from icalendar import Calendar

from events.models import Event
from invitations.models import Invitation
from tests.invitations.helpers import accept, decline, page, snapshot

pytestmark = pytest.mark.django_db


def ics_url(token: str) -> str:
    return reverse("guest_calendar", args=[token])


def links(body: str) -> dict[str, str]:
    return {
        text.strip(): href
        for href, text in re.findall(r'<a [^>]*href="([^"]+)"[^>]*>([^<]+)</a>', body)
    }


def test_before_accepting_there_is_no_calendar_and_the_file_is_refused(client, token):
    body = client.get(page(token)).content.decode()
    assert "Add to your calendar" not in body
    before = snapshot()
    response = client.get(ics_url(token))
    assert response.status_code == 409
    assert "once you have accepted" in response.content.decode()
    assert snapshot() == before


def test_after_accepting_the_page_offers_the_ics_and_calendar_links(client, event, token):
    accept(client, token)
    body = client.get(page(token)).content.decode().replace("&amp;", "&")
    found = links(body)
    assert found["Calendar file (.ics)"] == ics_url(token)
    google = urlsplit(found["Google Calendar"])
    assert google.netloc == "calendar.google.com"
    query = parse_qs(google.query)
    start, end = event.starts_at, event.ends_at
    assert query["text"] == [event.title] and query["location"] == [event.location]
    assert query["dates"] == [f"{start:%Y%m%dT%H%M%S}Z/{end:%Y%m%dT%H%M%S}Z"]
    outlook = urlsplit(found["Outlook"])
    assert outlook.netloc == "outlook.live.com"
    assert parse_qs(outlook.query)["startdt"] == [f"{start:%Y-%m-%dT%H:%M:%S}Z"]
    assert token not in found["Google Calendar"] + found["Outlook"]


def test_the_ics_file_is_the_accepted_event_with_the_invitations_uid(client, event, token):
    accept(client, token)
    before = snapshot()
    response = client.get(ics_url(token))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/calendar; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="summer-party.ics"'
    calendar = Calendar.from_ical(response.content)
    assert "METHOD" not in calendar  # a file to add, not an invitation to answer
    [entry] = calendar.walk("VEVENT")
    invitation = Invitation.objects.get(email="guest0@example.com")
    assert str(entry["UID"]) == invitation.calendar_uid  # the emailed updates replace it
    assert entry.decoded("DTSTART") == event.starts_at
    assert str(entry["LOCATION"]) == event.location
    assert entry["ORGANIZER"].params["CN"] == "Olivia Park"
    assert snapshot() == before  # a GET changes nothing


def test_a_declined_guest_gets_no_calendar_file(client, token):
    decline(client, token)
    assert client.get(ics_url(token)).status_code == 409
    assert client.post(ics_url(token)).status_code == 405


def test_the_place_has_a_map_link(client, event, token):
    found = links(client.get(page(token)).content.decode().replace("&amp;", "&"))
    url = urlsplit(found["Map"])
    assert url.netloc == "www.openstreetmap.org"
    assert parse_qs(url.query)["query"] == [event.location]


def test_no_map_link_without_a_place(client, event, token):
    Event.objects.filter(pk=event.pk).update(location="")
    assert ">Map<" not in client.get(page(token)).content.decode()


def test_accept_and_decline_are_one_form_and_the_header_is_not_a_login_link(client, token):
    body = client.get(page(token)).content.decode()
    forms = re.findall(r"<form .*?</form>", body, re.S)
    [answer] = [form for form in forms if "Accept" in form]
    assert f'formaction="{reverse("guest_decline", args=[token])}"' in answer
    assert 'href="/"' not in body and reverse("login") not in body


def test_the_decline_button_declines(client, token):
    response = client.post(reverse("guest_decline", args=[token]), {"party_size": "1"})
    assert response.status_code == 302
    assert Invitation.objects.get(email="guest0@example.com").rsvp == "declined"


def test_guest_pages_send_the_referrer_only_to_this_site(client, token):
    """The token is in the URL: the Map and calendar links must not carry it away. Not
    "no-referrer": over HTTPS, Django's CSRF check wants a Referer (or Origin) of this site."""
    assert client.get(page(token))["Referrer-Policy"] == "same-origin"
    https = Client(enforce_csrf_checks=True)
    shown = https.get(page(token), secure=True)
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', shown.content.decode())[1]
    referer = f"https://testserver{page(token)}"
    answered = https.post(
        reverse("guest_accept", args=[token]),
        {"party_size": "1", "csrfmiddlewaretoken": csrf},
        secure=True,
        headers={"referer": referer},
    )
    assert answered.status_code == 302
    refused = Client(enforce_csrf_checks=True)
    own = refused.get(page(token), secure=True).content.decode()
    own_csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', own)[1]
    no_referer = refused.post(
        reverse("guest_decline", args=[token]),
        {"csrfmiddlewaretoken": own_csrf},
        secure=True,
    )
    # What "no-referrer" would do to every guest's answer over HTTPS.
    assert no_referer.status_code == 403
    assert Invitation.objects.get(email="guest0@example.com").rsvp == "accepted"


def test_every_page_a_guest_can_meet_has_no_link_to_the_organizer_login(client, token, settings):
    settings.GPMAS_GUEST_RATE_LIMIT = "1/m"
    accept(client, token)
    too_many = accept(client, token)  # the rate limit's page, from events.responses.problem
    assert too_many.status_code == 429
    forged = Client(enforce_csrf_checks=True).post(reverse("guest_decline", args=[token]))
    assert forged.status_code == 403
    for response in (too_many, forged, client.get("/i/unknown-token-1234567890/")):
        body = response.content.decode()
        assert "<strong>GPMAS</strong>" in body and 'href="/"' not in body
