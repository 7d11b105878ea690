"""Reads for the guest list and the guest's page."""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Count, F, Q, QuerySet, Sum

from delivery.models import EmailJob
from events.models import Event
from invitations.models import Invitation

Rsvp = Invitation.Rsvp
RSVP_FILTERS = [*Rsvp.values, "revoked"]
DELIVERY_FILTERS = EmailJob.Status.values


def guest_list(
    event: Event, *, rsvp: str = "", delivery: str = "", search: str = ""
) -> QuerySet[Invitation]:
    """Invitations of the event with their delivery status (one query, joined)."""
    guests = Invitation.objects.filter(event=event).annotate(delivery_status=F("email_job__status"))
    if rsvp == "revoked":
        guests = guests.filter(revoked_at__isnull=False)
    else:
        guests = guests.live()
        if rsvp in Rsvp.values:
            guests = guests.filter(rsvp=rsvp)
    if delivery in DELIVERY_FILTERS:
        guests = guests.filter(email_job__status=delivery)
    if search:
        guests = guests.filter(Q(email__icontains=search) | Q(name__icontains=search))
    return guests.order_by("id")


def guest_counts(event: Event) -> dict[str, int]:
    """RSVP counts and seats of the live invitations, in one query."""
    live = Q(revoked_at__isnull=True)
    counts = Invitation.objects.filter(event=event).aggregate(
        invited=Count("pk", filter=live),
        accepted=Count("pk", filter=live & Q(rsvp=Rsvp.ACCEPTED)),
        seats=Sum("party_size", filter=live & Q(rsvp=Rsvp.ACCEPTED)),
        declined=Count("pk", filter=live & Q(rsvp=Rsvp.DECLINED)),
        waitlisted=Count("pk", filter=live & Q(rsvp=Rsvp.WAITLISTED)),
        pending=Count("pk", filter=live & Q(rsvp=Rsvp.PENDING)),
        revoked=Count("pk", filter=Q(revoked_at__isnull=False)),
    )
    counts["seats"] = counts["seats"] or 0
    return counts


def live_emails(event: Event) -> set[str]:
    return set(Invitation.objects.live().filter(event=event).values_list("email", flat=True))


def guest_export_rows(event: Event) -> Iterator[list[str]]:
    yield ["name", "email", "rsvp", "party_size", "responded_at", "delivery", "revoked_at"]
    guests = (
        Invitation.objects.filter(event=event)
        .annotate(delivery_status=F("email_job__status"))
        .order_by("id")
    )
    for guest in guests.iterator(chunk_size=2000):
        yield [
            guest.name,
            guest.email,
            guest.rsvp,
            str(guest.party_size) if guest.rsvp == Rsvp.ACCEPTED else "",
            guest.responded_at.isoformat() if guest.responded_at else "",
            guest.delivery_status or "",
            guest.revoked_at.isoformat() if guest.revoked_at else "",
        ]
