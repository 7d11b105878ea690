"""Reads for the organizer's pages: a fixed number of queries whatever the number of events."""

from __future__ import annotations

from collections import defaultdict

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404
from django.utils import timezone

from delivery.models import EmailJob
from events.models import Event

Status = EmailJob.Status
# How the dashboard groups delivery states: waiting or in flight, sent, failed (not sent: a
# suppressed address is counted there too).
DELIVERY_GROUPS = {
    Status.QUEUED: "queued",
    Status.RETRYING: "queued",
    Status.SENDING: "queued",
    Status.SENT: "sent",
    Status.FAILED: "failed",
    Status.SUPPRESSED: "failed",
}


def event_for_organizer(organizer: AbstractBaseUser, event_id: int) -> Event:
    """The organizer's own event; 404 for anyone else's (never 403: no hint that it exists)."""
    return get_object_or_404(
        Event.objects.select_related("organizer"), pk=event_id, organizer=organizer
    )


def guest_count_annotations() -> dict[str, Count]:
    """Counts over the event's live invitations: one JOIN, filtered aggregates."""
    live = Q(invitations__revoked_at__isnull=True)

    def count(*rsvp: str) -> Count:
        condition = live & Q(invitations__rsvp__in=rsvp) if rsvp else live
        return Count("invitations", filter=condition)

    return {
        "invited_count": count(),
        "accepted_count": count("accepted"),
        "declined_count": count("declined"),
        "waitlisted_count": count("waitlisted"),
        "pending_count": count("pending"),
    }


def delivery_counts(events: list[Event]) -> dict[int, dict[str, int]]:
    """Per event: its emails (invitations, answers, reminders, notices) by delivery state."""
    topics = {}
    for event in events:
        topics[event.topic] = event.pk
        topics[event.notice_topic] = event.pk
    counts: dict[int, dict[str, int]] = defaultdict(lambda: {"queued": 0, "sent": 0, "failed": 0})
    rows = (
        EmailJob.objects.filter(topic__in=list(topics))
        .values_list("topic", "status")
        .annotate(n=Count("id"))
        .order_by()
    )
    for topic, status, n in rows:
        group = DELIVERY_GROUPS.get(status)
        if group:
            counts[topics[topic]][group] += n
    return {event.pk: counts[event.pk] for event in events}


def events_for_dashboard(organizer: AbstractBaseUser) -> list[Event]:
    """The organizer's events, upcoming first (soonest first), then past ones (latest first),
    each with guest counts and delivery counts. Two queries."""
    events = list(
        Event.objects.filter(organizer=organizer)
        .annotate(**guest_count_annotations())
        .order_by("starts_at", "id")
    )
    deliveries = delivery_counts(events)
    for event in events:
        event.delivery = deliveries[event.pk]
    now = timezone.now()
    upcoming = [event for event in events if not event.has_ended(now)]
    past = [event for event in events if event.has_ended(now)]
    return upcoming + past[::-1]
