"""Organizers have a display name: asked for on the first login, changed on /profile/, and what
guests read. Flash messages count properly."""

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from events.models import OrganizerProfile
from invitations.models import Invitation
from tests.events.factories import form_data, make_event

pytestmark = pytest.mark.django_db


@pytest.fixture
def newcomer(django_user_model):
    user = django_user_model.objects.create_user("nina", "nina@example.com", "pw-nina-1")
    client = Client()
    client.force_login(user)
    return user, client


def test_an_organizer_without_a_display_name_is_asked_for_one_first(newcomer):
    user, client = newcomer
    response = client.get(reverse("event_new"))
    assert response.status_code == 302
    assert response["Location"] == "/profile/?next=%2Fevents%2Fnew%2F"
    page = client.get(response["Location"])
    assert page.status_code == 200
    assert "how should guests see you" in page.content.decode()


def test_saving_the_name_goes_back_where_the_organizer_was_going(newcomer):
    user, client = newcomer
    response = client.post(
        "/profile/?next=/events/new/", {"display_name": "  Nina   Berg ", "next": "/events/new/"}
    )
    assert response.status_code == 302 and response["Location"] == "/events/new/"
    assert OrganizerProfile.objects.get(user=user).display_name == "Nina Berg"
    page = client.get(reverse("event_new"))
    assert page.status_code == 200
    assert "Nina Berg" in page.content.decode()  # the header shows the name, not "nina"


def test_next_never_leaves_the_site(newcomer):
    user, client = newcomer
    response = client.post(
        reverse("profile"), {"display_name": "Nina Berg", "next": "https://evil.example/"}
    )
    assert response["Location"] == reverse("dashboard")


@pytest.mark.parametrize(
    ("name", "message"),
    [("", "This field is required."), ("Nina <nina@x.org>", "must not contain &lt; or &gt;")],
)
def test_a_bad_name_is_refused_with_a_summary_and_nothing_saved(newcomer, name, message):
    user, client = newcomer
    response = client.post(reverse("profile"), {"display_name": name})
    assert response.status_code == 400
    body = response.content.decode()
    assert 'class="error-summary"' in body and message in body
    assert '<a href="#id_display_name">' in body
    assert not OrganizerProfile.objects.filter(user=user).exists()


def test_guest_admin_and_logout_pages_are_not_redirected(newcomer, django_user_model):
    user, client = newcomer
    assert client.get("/i/not-a-token/").status_code == 404
    user.is_staff = user.is_superuser = True
    user.save()
    assert client.get(reverse("admin:index")).status_code == 200
    assert client.post(reverse("logout")).status_code == 302
    assert client.get(reverse("dashboard"))["Location"].startswith("/login/")


def test_the_favicon_and_the_webhooks_are_not_redirected(newcomer):
    """The browser fetches the icon for every page, the admin's included: a redirect to the
    profile page served HTML as the icon."""
    _, client = newcomer
    icon = client.get("/favicon.svg")
    assert (icon.status_code, icon["Content-Type"]) == (200, "image/svg+xml")
    assert client.get("/favicon.ico")["Location"] == "/favicon.svg"
    webhook = client.post("/webhooks/mailgun/tracking/", data={})
    assert webhook.status_code != 302  # answered by the webhook (refused), not sent to /profile/


def test_an_organizer_changes_the_name_and_guests_see_the_new_one(organizer_client, organizer):
    page = organizer_client.get(reverse("profile"))
    assert 'value="Olivia Park"' in page.content.decode()
    organizer_client.post(reverse("profile"), {"display_name": "Olivia P. Park"})
    event = make_event(organizer, guests=1)
    invitation = Invitation.objects.get(event=event)
    job = invitation.email_job
    assert "Olivia P. Park invites you" in job.text_body
    assert "olivia" not in job.text_body.replace("Olivia", "")  # no username, anywhere


def test_the_demo_organizer_is_olivia_park():
    call_command("create_demo_users")
    assert OrganizerProfile.objects.get(user__username="organizer").display_name == "Olivia Park"


@pytest.mark.parametrize(
    ("guests", "expected"),
    [
        ("ann@example.com", "1 invitation is on its way."),
        ("a@example.com\nb@example.com\nc@example.com", "3 invitations are on their way."),
        ("a@example.com\na@example.com", "1 duplicate line in the list was skipped."),
    ],
)
def test_flash_messages_count_properly(organizer_client, guests, expected):
    response = organizer_client.post(reverse("event_new"), form_data(guests=guests), follow=True)
    body = response.content.decode()
    assert expected in body and "(s)" not in body
