"""Who may open the organizer's event pages: every URL of an event is 404 to another organizer
and sends an anonymous visitor to log in, and the list of URLs checked is complete."""

import pytest
from django.test import Client
from django.urls import reverse

from delivery.models import EmailJob
from events.models import Event
from invitations.models import Invitation
from tests.events.factories import form_data, make_event

pytestmark = pytest.mark.django_db


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
        ("get", "event_live"),
    ]
    by_invitation = [
        ("get", "invitation_resend"),
        ("post", "invitation_resend"),
        ("get", "invitation_revoke"),
        ("post", "invitation_revoke"),
        ("post", "invitation_unrevoke"),
    ]
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
        "invitation_unrevoke",
        "event_live",
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
