"""Test data built through the real services, as an organizer and a guest would build it."""

from __future__ import annotations

import datetime as dt
import re

from django.utils import timezone

from delivery.models import EmailJob
from events.models import Event
from events.services import EventFields, event_create
from invitations.guestlist import Guest
from invitations.models import Invitation
from invitations.services import invitations_invite

TOKEN_IN_LINK = re.compile(r"/i/([A-Za-z0-9_-]{20,})/")


def event_fields(**overrides) -> EventFields:
    starts = (timezone.now() + dt.timedelta(days=10)).replace(second=0, microsecond=0)
    values = {
        "title": "Summer party",
        "starts_at": starts,
        "ends_at": starts + dt.timedelta(hours=4),
        "timezone": "Europe/Berlin",
        "location": "Garden, Main St 1",
        "description": "Bring a hat.",
        "capacity": None,
        "plus_ones_allowed": 0,
        "rsvp_deadline": None,
    }
    values.update(overrides)
    return EventFields(**values)


def form_data(**overrides) -> dict:
    """The event form as an organizer's browser posts it (next year's summer party)."""
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


def make_event(organizer, *, guests: int | list[str] = 0, **overrides) -> Event:
    emails = [f"guest{i}@example.com" for i in range(guests)] if isinstance(guests, int) else guests
    event, _ = event_create(
        organizer=organizer,
        fields=event_fields(**overrides),
        guests=[Guest(email=email, name=f"Guest {email.split('@')[0]}") for email in emails],
    )
    return event


def invite(event: Event, *emails: str) -> list[Invitation]:
    return invitations_invite(event=event, guests=[Guest(email=e) for e in emails]).invited


def token_of(invitation: Invitation) -> str:
    """The raw token, read from the invitation email as the guest would."""
    job = EmailJob.objects.get(pk=Invitation.objects.get(pk=invitation.pk).email_job_id)
    return TOKEN_IN_LINK.search(job.text_body).group(1)


def tokens(event: Event) -> dict[str, str]:
    """email -> raw token, for every live invitation of the event."""
    return {
        inv.email: token_of(inv)
        for inv in Invitation.objects.filter(event=event, revoked_at__isnull=True)
    }


def jobs(kind: str | None = None, **filters) -> list[EmailJob]:
    queryset = EmailJob.objects.filter(**filters).order_by("id")
    if kind:
        queryset = queryset.filter(kind=kind)
    return list(queryset)
