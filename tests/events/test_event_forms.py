"""The organizer's event forms: times read and shown in the event's own time zone, bad input
refused with nothing saved, cancel and delete asking first."""

import datetime as dt
import zoneinfo

import pytest
from django.urls import reverse
from django.utils import timezone

from delivery.models import EmailJob
from events.models import Event
from invitations.models import Invitation
from tests.events.factories import form_data, make_event

pytestmark = pytest.mark.django_db
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")


def test_creating_an_event_reads_times_in_its_own_zone(organizer_client, organizer):
    response = organizer_client.post(
        reverse("event_new"),
        form_data(guests="Ann <ann@example.com>\nbob@example.com, Bob\nann@example.com"),
    )
    event = Event.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/events/{event.pk}/"
    year = timezone.now().year + 1
    assert event.starts_at == dt.datetime(year, 6, 1, 16, 0, tzinfo=dt.UTC)  # 18:00 CEST
    assert event.rsvp_deadline == dt.datetime(year, 5, 25, 10, 0, tzinfo=dt.UTC)
    assert (event.organizer, event.capacity, event.plus_ones_allowed) == (organizer, 50, 1)
    assert Invitation.objects.filter(event=event).count() == 2
    page = organizer_client.get(response["Location"]).content.decode()
    assert (
        "2 invitations are on their way" in page
        and "1 duplicate line in the list was skipped" in page
    )
    assert "18:00–23:30 CEST (Europe/Berlin)" in page


def test_a_time_that_does_not_exist_in_the_zone_is_refused(organizer_client):
    year = timezone.now().year + 1
    march_change = max(
        day for day in range(25, 32) if dt.date(year, 3, day).weekday() == 6
    )  # last Sunday of March: 02:00-03:00 does not exist in Berlin
    response = organizer_client.post(
        reverse("event_new"), form_data(starts_at=f"{year}-03-{march_change}T02:30")
    )
    assert response.status_code == 400
    assert "Europe/Berlin" in response.content.decode()
    assert not Event.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"title": "Party\r\nBcc: x@example.com"}, "Must be one line"),
        ({"title": ""}, "This field is required"),
        ({"ends_at": "2001-01-01T00:00"}, "The end must be after the start"),
        ({"timezone": "Nowhere/Town"}, "Select a valid choice"),
        ({"capacity": "0"}, "greater than or equal to 1"),
        ({"capacity": "many"}, "Enter a whole number"),
        ({"starts_at": "tomorrow"}, "Enter a valid date/time"),
        ({"rsvp_deadline": "2999-01-01T00:00"}, "must not be after the start"),
        ({"guests": "ok@example.com\nnot-an-email\nAnn <ann@>"}, "2 lines of the guest list"),
    ],
)
def test_bad_input_on_the_event_form_is_shown_and_nothing_is_saved(
    organizer_client, overrides, message
):
    response = organizer_client.post(reverse("event_new"), form_data(**overrides))
    assert response.status_code == 400
    assert message in response.content.decode()
    assert Event.objects.count() == EmailJob.objects.count() == 0


def test_guest_list_errors_on_the_event_form_name_their_lines(organizer_client):
    response = organizer_client.post(
        reverse("event_new"), form_data(guests="ok@example.com\n\nnot-an-email\n")
    )
    body = response.content.decode()
    assert '<td class="num">3</td><td class="wrap"><code>not-an-email</code></td>' in body


def test_an_uploaded_csv_that_is_too_large_is_refused(organizer_client, settings):
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.GPMAS_GUEST_LIST_MAX_BYTES = 2048
    big = SimpleUploadedFile("guests.csv", b"x@example.com\n" * 200, content_type="text/csv")
    response = organizer_client.post(reverse("event_new"), {**form_data(), "guests_file": big})
    assert response.status_code == 400
    assert "at most 2,048 bytes" in response.content.decode()
    assert not Event.objects.exists()


def test_the_edit_form_shows_local_times_and_saves_them(organizer_client, organizer):
    event = make_event(organizer)
    page = organizer_client.get(reverse("event_edit", args=[event.pk])).content.decode()
    local_start = event.starts_at.astimezone(BERLIN)
    assert f'value="{local_start:%Y-%m-%dT%H:%M}"' in page
    year = timezone.now().year + 1
    response = organizer_client.post(
        reverse("event_edit", args=[event.pk]),
        form_data(
            timezone="America/New_York",
            starts_at=f"{year}-07-04T19:00",
            ends_at=f"{year}-07-04T22:00",
            rsvp_deadline="",
        ),
    )
    assert response.status_code == 302
    event.refresh_from_db()
    assert event.starts_at == dt.datetime(year, 7, 4, 23, 0, tzinfo=dt.UTC)  # 19:00 EDT
    assert event.sequence == 1


def test_cancel_and_delete_ask_first_and_change_nothing_on_get(organizer_client, organizer):
    event = make_event(organizer, guests=2)
    for name in ("event_cancel", "event_delete"):
        response = organizer_client.get(reverse(name, args=[event.pk]))
        assert response.status_code == 200 and '<form method="post">' in response.content.decode()
    assert Event.objects.get(pk=event.pk).status == "active"
    assert organizer_client.post(reverse("event_cancel", args=[event.pk])).status_code == 302
    assert Event.objects.get(pk=event.pk).status == "cancelled"
    response = organizer_client.post(reverse("event_delete", args=[event.pk]))
    assert response.status_code == 302 and response["Location"] == "/"
    assert not Event.objects.exists()


def test_a_cancelled_event_cannot_be_edited_or_invited_to(organizer_client, organizer):
    event = make_event(organizer)
    organizer_client.post(reverse("event_cancel", args=[event.pk]))
    for name in ("event_edit", "event_invite"):
        response = organizer_client.post(reverse(name, args=[event.pk]), form_data())
        assert response.status_code == 302
    event.refresh_from_db()
    assert event.sequence == 1 and not Invitation.objects.exists()
