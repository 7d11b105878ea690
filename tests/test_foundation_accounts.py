import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_demo_users_command_is_idempotent():
    call_command("create_demo_users")
    call_command("create_demo_users")
    users = get_user_model().objects.order_by("username")
    assert [(u.username, u.is_staff, u.is_superuser) for u in users] == [
        ("admin", True, True),
        ("organizer", False, False),
    ]
    assert users.get(username="organizer").check_password("organizer-demo-pass")


def test_demo_users_command_resets_a_changed_password():
    call_command("create_demo_users")
    organizer = get_user_model().objects.get(username="organizer")
    organizer.set_password("changed")
    organizer.save()
    call_command("create_demo_users")
    organizer.refresh_from_db()
    assert organizer.check_password("organizer-demo-pass")


def test_dashboard_requires_login(client):
    response = client.get(reverse("dashboard"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_organizer_logs_in_and_sees_the_dashboard(client, organizer):
    response = client.post(
        reverse("login"), {"username": "olivia", "password": "pw-olivia-1"}, follow=True
    )
    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == reverse("dashboard")
    assert b"Your events" in response.content


def test_wrong_password_shows_a_form_error(client, organizer):
    response = client.post(reverse("login"), {"username": "olivia", "password": "nope"})
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content
    assert "_auth_user_id" not in client.session


def test_logout_is_post_only(client, organizer):
    client.force_login(organizer)
    assert client.get(reverse("logout")).status_code == 405
    assert client.post(reverse("logout")).status_code == 302
    assert client.get(reverse("dashboard")).status_code == 302
