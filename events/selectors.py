"""Reads for the organizer's pages: a fixed number of queries whatever the number of events."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import BooleanField, Case, Count, Min, Q, When
from django.shortcuts import get_object_or_404
from django.utils import timezone

from delivery import progress
from delivery.models import EmailJob
from events.models import Event


def event_for_organizer(organizer: AbstractBaseUser, event_id: int) -> Event:
    """The organizer's own event; 404 for anyone else's (never 403: no hint that it exists)."""
    return get_object_or_404(
        Event.objects.select_related("organizer__organizer_profile"),
        pk=event_id,
        organizer=organizer,
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


def delivery_counts(events: list[Event], now: dt.datetime | None = None) -> dict[int, dict]:
    """Per event: its emails (invitations, answers, reminders, notices) by what the organizer
    reads (``delivery.progress``): scheduled (with the earliest date), waiting to send, sending,
    sent, failed (suppressed among them), and what the providers' events said after sending
    (delivered, delayed, bounced, marked as spam, unsubscribed). One query."""
    now = now or timezone.now()
    topics = {}
    for event in events:
        topics[event.topic] = event.pk
        topics[event.notice_topic] = event.pk
    counts: dict[int, dict] = defaultdict(progress.empty_counts)
    later = Q(status__in=progress.NOT_SENT_YET, not_before__gt=now)
    rows = (
        EmailJob.objects.filter(topic__in=list(topics))
        .values_list("topic", "status", "delivery_state")
        .annotate(
            later=Case(When(later, then=True), default=False, output_field=BooleanField()),
            n=Count("id"),
            first=Min("not_before"),
        )
        .order_by()
    )
    for topic, status, state, is_later, n, first in rows:
        code = progress.SCHEDULED if is_later else progress.progress_code(status, None, now)
        progress.add_to_counts(counts[topics[topic]], code, n, first, state)
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
