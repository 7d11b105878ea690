"""Reads for the guest list and the guest's page."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator

from django.conf import settings
from django.db.models import Case, Count, F, Q, QuerySet, Sum, TextField, Value, When
from django.utils import timezone

from delivery import progress
from events.models import Event
from invitations.models import Invitation

Rsvp = Invitation.Rsvp
RSVP_FILTERS = [*Rsvp.values, "revoked"]
# The delivery filter's choices, in two groups: the sending, then what the provider said after.
DELIVERY_FILTERS = [
    (
        "Sending",
        [label for code, label in progress.LABELS.items() if code not in progress.OUTCOMES],
    ),
    ("After sending", [progress.LABELS[code] for code in progress.OUTCOMES]),
]
BY_LABEL = {label: code for code, label in progress.LABELS.items()}


def guest_list(
    event: Event,
    *,
    rsvp: str = "",
    delivery: str = "",
    search: str = "",
    now: dt.datetime | None = None,
) -> QuerySet[Invitation]:
    """Invitations of the event with their invitation email's state (one query, joined).
    ``delivery`` is what the organizer reads (``delivery.progress``), e.g. "waiting to send"."""
    guests = with_delivery(Invitation.objects.filter(event=event))
    if rsvp == "revoked":
        guests = guests.filter(revoked_at__isnull=False)
    else:
        guests = guests.live()
        if rsvp in Rsvp.values:
            guests = guests.filter(rsvp=rsvp)
    wanted = progress.progress_filter(
        BY_LABEL.get(delivery, ""), now or timezone.now(), "email_job__"
    )
    if wanted is not None:
        guests = guests.filter(wanted)
    if search:
        guests = guests.filter(Q(email__icontains=search) | Q(name__icontains=search))
    return guests.order_by("id")


def with_delivery(guests: QuerySet[Invitation]) -> QuerySet[Invitation]:
    """The invitation email's state, in the same query: its status, due date, delivery state,
    and for a suppressed one the note that says why (``delivery.progress.not_sent_because``)."""
    suppressed = Q(email_job__status=progress.SUPPRESSED)
    return guests.annotate(
        delivery_status=F("email_job__status"),
        delivery_not_before=F("email_job__not_before"),
        delivery_state=F("email_job__delivery_state"),
        delivery_note=Case(
            When(suppressed, then=F("email_job__last_error")),
            default=Value(""),
            output_field=TextField(),
        ),
    )


def guest_rows(event: Event, ids: Iterable[int]) -> QuerySet[Invitation]:
    """These guests of the event (revoked ones too), for their rows; one query."""
    return with_delivery(Invitation.objects.filter(event=event, pk__in=list(ids))).order_by("id")


def with_progress(guests: Iterable[Invitation], event: Event, now: dt.datetime | None = None):
    """The guests, each with ``delivery`` (its invitation email as the organizer reads it) and
    ``undo_until`` (while its revoke can still be undone)."""
    now = now or timezone.now()
    guests = list(guests)
    for guest in guests:
        guest.undo_until = undo_until(guest, now)
        guest.delivery = progress.job_progress(
            guest.delivery_status,
            guest.delivery_not_before,
            now=now,
            tz=event.tzinfo,
            delivery_state=guest.delivery_state or "",
            note=guest.delivery_note or "",
        )
    return guests


def undo_until(invitation: Invitation, now: dt.datetime) -> dt.datetime | None:
    if not invitation.revoked_at:
        return None
    until = invitation.revoked_at + dt.timedelta(seconds=settings.GPMAS_REVOKE_UNDO_SECONDS)
    return until if now <= until else None


def recently_revoked(event: Event, now: dt.datetime | None = None) -> list[Invitation]:
    """Invitations revoked recently enough to be undone, latest first (one query)."""
    now = now or timezone.now()
    since = now - dt.timedelta(seconds=settings.GPMAS_REVOKE_UNDO_SECONDS)
    guests = Invitation.objects.filter(event=event, revoked_at__gte=since).order_by("-revoked_at")
    guests = list(guests[:20])
    for guest in guests:
        guest.undo_until = undo_until(guest, now)
    return guests


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
