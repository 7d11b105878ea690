"""Event writes (docs/architecture.md, "Events"): create, update, cancel, delete; each one
transaction.

Changes that guests see go out as outbox rows in the same transaction: update emails and new
reminders when the event moves, cancellation notices (iCalendar METHOD:CANCEL) when it is
cancelled or deleted. Jobs that must die with the event carry its topic (``event:<id>``);
the notices carry another one, so the cleanup that cancels the first never touches them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cache

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from delivery.services import email_jobs_cancel
from events.errors import EventClosed
from events.models import Event
from invitations.guestlist import Guest
from invitations.services import (
    InviteReport,
    guests_notify_cancellation,
    guests_notify_update,
    invitations_invite,
    invitations_refresh_unsent,
    tokens_retire_for_event,
    waitlist_promote,
)
from reliability.locks import hold_if_available

_LINE_BREAK = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]")
MAX_CAPACITY = 100_000
MAX_PLUS_ONES = 20
MAX_DESCRIPTION = 5000
GUEST_VISIBLE = ("title", "description", "location", "starts_at", "ends_at", "timezone")


@cache
def known_time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


@dataclass(frozen=True)
class EventFields:
    """What an organizer sets on an event; ``errors()`` is the one place the rules live."""

    title: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    timezone: str = "UTC"
    description: str = ""
    location: str = ""
    capacity: int | None = None
    plus_ones_allowed: int = 0
    rsvp_deadline: dt.datetime | None = None

    @classmethod
    def of(cls, event: Event) -> EventFields:
        return cls(**{f.name: getattr(event, f.name) for f in dataclasses.fields(cls)})

    def errors(self) -> dict[str, str]:
        errors: dict[str, str] = {}
        for name, limit in (("title", 200), ("location", 300)):
            value = getattr(self, name)
            if _LINE_BREAK.search(value):
                errors[name] = "Must be one line: no line breaks or control characters."
            elif len(value) > limit:
                errors[name] = f"At most {limit} characters."
        if not self.title.strip() and "title" not in errors:
            errors["title"] = "An event needs a title."
        if len(self.description) > MAX_DESCRIPTION:
            errors["description"] = f"At most {MAX_DESCRIPTION} characters."
        if self.timezone not in known_time_zones():
            errors["timezone"] = "Choose a time zone from the list (an IANA name)."
        if self.ends_at <= self.starts_at:
            errors["ends_at"] = "The end must be after the start."
        if self.rsvp_deadline is not None and self.rsvp_deadline > self.starts_at:
            errors["rsvp_deadline"] = "The RSVP deadline must not be after the start."
        if self.capacity is not None and not 1 <= self.capacity <= MAX_CAPACITY:
            errors["capacity"] = f"Between 1 and {MAX_CAPACITY:,}, or empty for unlimited."
        if not 0 <= self.plus_ones_allowed <= MAX_PLUS_ONES:
            errors["plus_ones_allowed"] = f"Between 0 and {MAX_PLUS_ONES}."
        return errors

    def validate(self) -> None:
        errors = self.errors()
        if errors:
            raise ValidationError(errors)

    def cleaned(self) -> EventFields:
        return replace(self, title=self.title.strip(), location=self.location.strip())


@dataclass
class EventUpdate:
    event: Event
    changed: list[str]
    update_emails: int = 0
    invitations_rewritten: int = 0
    promoted: int = 0


@dataclass
class EventDeletion:
    cancelled_jobs: int
    notices: int


def event_create(
    *, organizer: AbstractBaseUser, fields: EventFields, guests: Sequence[Guest] = ()
) -> tuple[Event, InviteReport]:
    """The event, its invitations and their emails, all in one transaction."""
    fields = fields.cleaned()
    fields.validate()
    if fields.starts_at <= timezone.now():
        raise ValidationError({"starts_at": "The start must be in the future."})
    with transaction.atomic():
        event = Event.objects.create(organizer=organizer, **vars(fields))
        report = invitations_invite(event=event, guests=guests) if guests else InviteReport()
        return event, report


def event_update(*, event: Event, fields: EventFields) -> EventUpdate:
    """Change an active event. A guest-visible change raises SEQUENCE and rewrites reminders
    and unsent invitations; a new time or place also sends accepted guests an update with the
    new calendar entry. More capacity promotes the waitlist."""
    fields = fields.cleaned()
    fields.validate()
    with hold_if_available(f"event:{event.pk}"), transaction.atomic():
        now = timezone.now()
        locked = _locked_active(event)
        if fields.capacity is not None and fields.capacity < locked.seats_taken:
            raise ValidationError(
                {"capacity": f"{locked.seats_taken} seats are taken already: not less than that."}
            )
        before = vars(EventFields.of(locked))
        changed = [name for name, value in vars(fields).items() if before[name] != value]
        if not changed:
            return EventUpdate(locked, [])
        for name in changed:
            setattr(locked, name, getattr(fields, name))
        visible = any(name in GUEST_VISIBLE for name in changed)
        if visible:
            locked.sequence += 1
        locked.save()
        result = EventUpdate(locked, changed)
        if visible:
            result.update_emails = guests_notify_update(
                locked, changes=time_or_place(changed), now=now
            )
            result.invitations_rewritten = invitations_refresh_unsent(locked)
        result.promoted = len(waitlist_promote(locked, now))
        return result


def time_or_place(changed: Sequence[str]) -> list[str]:
    """What an update email names: the time, the place, or both."""
    named = []
    if {"starts_at", "ends_at"} & set(changed):
        named.append("time")
    if "location" in changed:
        named.append("place")
    return named


def event_cancel(*, event: Event) -> Event:
    """Cancel but keep the record: waiting emails of the event are cancelled, and the guests
    who expect it are told (accepted guests with a calendar cancellation). Idempotent."""
    with hold_if_available(f"event:{event.pk}"), transaction.atomic():
        locked = Event.objects.locked(event.pk)
        if locked is None:
            raise EventClosed("This event no longer exists.")
        if locked.is_cancelled:
            return locked
        email_jobs_cancel(topic=locked.topic, reason="event cancelled")
        locked.status = Event.Status.CANCELLED
        locked.cancelled_at = timezone.now()
        locked.sequence += 1
        locked.save(update_fields=["status", "cancelled_at", "sequence", "updated_at"])
        guests_notify_cancellation(locked, sequence=locked.sequence, deleted=False)
        return locked


def event_delete(*, event: Event) -> EventDeletion:
    """Delete the event under its Redis lock, in one transaction: cancel its waiting emails,
    notify accepted and waitlisted guests (unless a cancellation told them already), retire
    the invitation links (they answer 410, not 404), delete invitations and event.

    A job already ``sending`` finishes; nothing else of the event reaches a provider after the
    commit, because the workers claim only ``queued``/``retrying`` jobs.
    """
    with hold_if_available(f"event:{event.pk}"), transaction.atomic():
        locked = Event.objects.locked(event.pk)
        if locked is None:
            return EventDeletion(0, 0)
        cancelled = email_jobs_cancel(topic=locked.topic, reason="event deleted")
        notices = 0
        if not locked.is_cancelled:
            notices = guests_notify_cancellation(locked, sequence=locked.sequence + 1, deleted=True)
        tokens_retire_for_event(locked)
        locked.invitations.all().delete()
        locked.delete()
        return EventDeletion(cancelled, notices)


def _locked_active(event: Event) -> Event:
    locked = Event.objects.locked(event.pk)
    if locked is None:
        raise EventClosed("This event no longer exists.")
    if locked.is_cancelled:
        raise EventClosed("A cancelled event cannot be changed.")
    return locked
