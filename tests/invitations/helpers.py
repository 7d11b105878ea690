"""The guest's side of the link, for the tests of tests/invitations: its URLs, the answers a
browser posts, and a snapshot of everything an answer could change."""

from django.test import Client
from django.urls import reverse

from delivery.models import EmailJob
from events.models import Event
from invitations.models import Invitation


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
