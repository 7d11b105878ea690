"""Events (docs/architecture.md, "Data"). Times are stored aware (UTC) and shown in the event's
own zone."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone as dj_timezone


class EventQuerySet(models.QuerySet):
    def locked(self, event_id: int) -> Event | None:
        """The event row, locked until the transaction ends: every change of an event's seats
        or guests happens under it (a no-op lock on SQLite, where every write transaction
        holds the whole database). Only the event's row is locked, not its organizer's."""
        rows = self.select_for_update(of=("self",)).select_related("organizer__organizer_profile")
        return rows.filter(pk=event_id).first()


class Event(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active"
        CANCELLED = "cancelled"

    organizer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="events"
    )
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    location = models.CharField(max_length=300, blank=True)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    timezone = models.CharField(max_length=64, default="UTC", help_text="IANA time zone.")
    capacity = models.PositiveIntegerField(null=True, blank=True, help_text="Empty = unlimited.")
    plus_ones_allowed = models.PositiveSmallIntegerField(default=0)
    rsvp_deadline = models.DateTimeField(null=True, blank=True, help_text="Empty = the start.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    # iCalendar SEQUENCE: +1 on every change a guest's calendar should pick up.
    sequence = models.PositiveIntegerField(default=0)
    # Seats held by accepted guests, changed only together with their invitations. The check
    # constraint below is the last guard against overbooking, even if every lock failed.
    seats_taken = models.PositiveIntegerField(default=0)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = EventQuerySet.as_manager()

    class Meta:
        ordering = ["starts_at", "id"]
        indexes = [models.Index(fields=["organizer", "starts_at"], name="event_organizer_start")]
        constraints = [
            models.CheckConstraint(
                condition=Q(capacity__isnull=True) | Q(seats_taken__lte=F("capacity")),
                name="event_seats_within_capacity",
            ),
            models.CheckConstraint(
                condition=Q(capacity__isnull=True) | Q(capacity__gte=1),
                name="event_capacity_positive",
            ),
            models.CheckConstraint(
                condition=Q(ends_at__gt=F("starts_at")), name="event_ends_after_start"
            ),
            models.CheckConstraint(
                condition=Q(rsvp_deadline__isnull=True) | Q(rsvp_deadline__lte=F("starts_at")),
                name="event_deadline_not_after_start",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["active", "cancelled"]), name="event_status_known"
            ),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def tzinfo(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    @property
    def answers_close_at(self) -> dt.datetime:
        return self.rsvp_deadline or self.starts_at

    @property
    def is_cancelled(self) -> bool:
        return self.status == self.Status.CANCELLED

    def has_ended(self, now: dt.datetime | None = None) -> bool:
        return (now or dj_timezone.now()) >= self.ends_at

    def answers_open(self, now: dt.datetime | None = None) -> bool:
        return (now or dj_timezone.now()) < self.answers_close_at

    @property
    def max_party_size(self) -> int:
        return 1 + self.plus_ones_allowed

    @property
    def topic(self) -> str:
        """Outbox topic of every job that must die with the event (invitations, reminders)."""
        return f"event:{self.pk}"

    @property
    def notice_topic(self) -> str:
        """Cancellation notices: outside ``topic`` so the deletion's cleanup keeps them."""
        return f"event:{self.pk}:cancellation"


class OrganizerProfile(models.Model):
    """What guests see of an organizer: "Olivia Park invites you", never a username."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="organizer_profile"
    )
    display_name = models.CharField(max_length=100)

    def __str__(self) -> str:
        return self.display_name
