"""Seats and the waitlist of one event; call with the event row locked (``Event.objects.locked``).

The seat counter ``Event.seats_taken`` moves only by a conditional UPDATE here and is capped by a
check constraint: the last guard against overbooking, should every lock fail.
"""

from __future__ import annotations

from django.db.models import F, Q, QuerySet, Sum

from events.models import Event
from invitations.errors import SeatsConflict
from invitations.models import Invitation

Rsvp = Invitation.Rsvp


def seats_recount(event: Event) -> int:
    """The seats the event's accepted guests hold, counted from their invitations."""
    accepted = Invitation.objects.live().filter(event=event, rsvp=Rsvp.ACCEPTED)
    return accepted.aggregate(seats=Sum("party_size"))["seats"] or 0


def seats_adjust(event: Event, delta: int) -> None:
    """Move the seat counter by ``delta`` in one conditional UPDATE, never past capacity."""
    if delta == 0:
        return
    rows = Event.objects.filter(pk=event.pk)
    if delta > 0:
        rows = rows.filter(Q(capacity__isnull=True) | Q(capacity__gte=F("seats_taken") + delta))
    if not rows.update(seats_taken=F("seats_taken") + delta):
        raise SeatsConflict("The seats changed under us; please try again.")
    event.seats_taken += delta


def waitlist(event_id: int) -> QuerySet[Invitation]:
    """The event's waitlist in order: first come, first served."""
    waiting = Invitation.objects.live().filter(event_id=event_id, rsvp=Rsvp.WAITLISTED)
    return waiting.order_by("waitlisted_at", "id")


def _ahead_of(invitation: Invitation) -> QuerySet[Invitation]:
    """Waitlisted guests before this one: all of them, unless it is waitlisted itself."""
    waiting = waitlist(invitation.event_id)
    if invitation.rsvp != Rsvp.WAITLISTED:
        return waiting
    return waiting.filter(
        Q(waitlisted_at__lt=invitation.waitlisted_at)
        | Q(waitlisted_at=invitation.waitlisted_at, pk__lt=invitation.pk)
    )


def waiting_ahead(invitation: Invitation) -> bool:
    """Free seats go to the waitlist first: nobody overtakes a guest already waiting."""
    return _ahead_of(invitation).exists()


def waitlist_position(invitation: Invitation) -> int:
    return _ahead_of(invitation).count() + 1
