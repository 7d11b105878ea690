"""The organizer's event pages: forms in the event's time zone, permissions, query counts."""

import datetime as dt
import zoneinfo

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from delivery.models import EmailJob
from events.models import Event
from invitations.models import Invitation
from invitations.services import invitation_accept, invitation_decline
from tests.events.factories import make_event, tokens

pytestmark = pytest.mark.django_db
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")


def form_data(**overrides) -> dict:
    year = timezone.now().year + 1
    data = {
        "title": "Summer party",
        "description": "Bring a hat.",
        "location": "Garden",
        "timezone": "Europe/Berlin",
        "starts_at": f"{year}-06-01T18:00",
        "ends_at": f"{year}-06-01T23:30",
        "capacity": "50",
        "plus_ones_allowed": "1",
        "rsvp_deadline": f"{year}-05-25T12:00",
        "guests": "",
    }
    data.update(overrides)
    return data


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
    assert "2 invitation(s) are on their way" in page and "1 duplicate line(s)" in page
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
    assert '<td class="num">3</td><td><code>not-an-email</code></td>' in body


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


def all_event_urls(event: Event, invitation: Invitation) -> list[tuple[str, str]]:
    """Every organizer URL of an event: (method, url). Keep in step with the URLconfs."""
    by_event = [
        ("get", "event_detail"),
        ("get", "event_edit"),
        ("post", "event_edit"),
        ("get", "event_cancel"),
        ("post", "event_cancel"),
        ("get", "event_delete"),
        ("post", "event_delete"),
        ("get", "event_invite"),
        ("post", "event_invite"),
        ("get", "event_guests_csv"),
    ]
    by_invitation = [("post", "invitation_resend"), ("post", "invitation_revoke")]
    return [(m, reverse(name, args=[event.pk])) for m, name in by_event] + [
        (m, reverse(name, args=[event.pk, invitation.pk])) for m, name in by_invitation
    ]


def test_the_permission_test_covers_every_organizer_url():
    from gpmas.urls import urlpatterns

    names = set()
    for pattern in urlpatterns:
        for inner in getattr(pattern, "url_patterns", [pattern]):
            if "event_id" in str(inner.pattern):
                names.add(inner.name)
    assert names == {
        "event_detail",
        "event_edit",
        "event_cancel",
        "event_delete",
        "event_invite",
        "event_guests_csv",
        "invitation_resend",
        "invitation_revoke",
    }


def test_another_organizer_gets_404_on_every_url_of_someone_elses_event(outsider_client, organizer):
    event = make_event(organizer, guests=1)
    invitation = Invitation.objects.get()
    before = (
        EmailJob.objects.count(),
        list(Event.objects.values()),
        list(Invitation.objects.values()),
    )
    for method, url in all_event_urls(event, invitation):
        response = getattr(outsider_client, method)(
            url, form_data(action="confirm", guests="email,name\nx@example.com,X\n")
        )
        assert response.status_code == 404, (method, url, response.status_code)
    after = (
        EmailJob.objects.count(),
        list(Event.objects.values()),
        list(Invitation.objects.values()),
    )
    assert after == before


def test_an_anonymous_visitor_is_sent_to_log_in(organizer):
    event = make_event(organizer, guests=1)
    invitation = Invitation.objects.get()
    anonymous = Client()
    for method, url in [
        ("get", reverse("dashboard")),
        ("get", reverse("event_new")),
        *all_event_urls(event, invitation),
    ]:
        response = getattr(anonymous, method)(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert Event.objects.filter(pk=event.pk, status="active").exists()


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
    # 1 invitation queued + 1 confirmation + 1 reminder + 1 waitlist email queued
    assert first.delivery == {"queued": 4, "sent": 1, "failed": 1}
    assert "Not yours" not in response.content.decode()
    assert later.pk in [e.pk for e in events]


def test_the_dashboard_query_count_does_not_grow_with_events(
    organizer_client, organizer, django_assert_num_queries
):
    make_event(organizer, guests=2)
    organizer_client.get(reverse("dashboard"))  # warm up: session, user
    # session, user, events, delivery counts, and the banner's system state (halt switch,
    # providers)
    with django_assert_num_queries(6) as one:
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
    with django_assert_num_queries(9) as few:  # 2 of them for the banner's system state
        organizer_client.get(url)
    Invitation.objects.all().delete()
    from tests.events.factories import invite

    invite(event, *[f"g{i}@example.com" for i in range(60)])
    links = tokens(event)
    for email in list(links)[:20]:
        invitation_accept(token=links[email], party_size=1)
    with django_assert_num_queries(len(few.captured_queries)):
        response = organizer_client.get(url)
    assert response.content.decode().count("<tr>") == 61  # header + 60 guests


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
    assert shown(rsvp="pending", delivery="queued") == ["guest0@example.com", "guest3@example.com"]
    assert shown(q="GUEST3") == ["guest3@example.com"]
    assert len(shown(rsvp="nonsense")) == 4
