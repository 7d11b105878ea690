"""iCalendar objects for confirmations, updates and cancellations (RFC 5545, iTIP).

Times are written in UTC: unambiguous for every client and needing no VTIMEZONE block; clients
show them in their user's zone, the email text shows the event's own zone.
"""

import datetime as dt
import email.utils

from django.conf import settings
from django.utils import timezone
from icalendar import Calendar, vCalAddress
from icalendar import Event as VEvent

from events.models import Event
from events.profile import display_name

REQUEST = "REQUEST"
CANCEL = "CANCEL"


def organizer_name(event: Event) -> str:
    """The organizer's display name (events/profile.py): "Olivia Park", never a username."""
    return display_name(event.organizer)


def organizer_address(event: Event) -> str:
    return event.organizer.email or email.utils.parseaddr(settings.GPMAS_DEFAULT_FROM_EMAIL)[1]


def _calendar(method: str = "") -> Calendar:
    calendar = Calendar()
    calendar.add("prodid", "-//GPMAS//Events//EN")
    calendar.add("version", "2.0")
    if method:
        calendar.add("method", method)
    return calendar


def _entry(event: Event, uid: str, sequence: int, status: str) -> VEvent:
    entry = VEvent()
    entry.add("uid", uid)
    entry.add("dtstamp", timezone.now().astimezone(dt.UTC))
    entry.add("dtstart", event.starts_at.astimezone(dt.UTC))
    entry.add("dtend", event.ends_at.astimezone(dt.UTC))
    entry.add("sequence", sequence)
    entry.add("summary", event.title)
    if event.description:
        entry.add("description", event.description)
    if event.location:
        entry.add("location", event.location)
    entry.add("status", status)
    organizer = vCalAddress(f"mailto:{organizer_address(event)}")
    organizer.params["cn"] = organizer_name(event)
    entry.add("organizer", organizer)
    return entry


def event_calendar(
    *,
    event: Event,
    uid: str,
    method: str,
    sequence: int,
    attendee_email: str,
    attendee_name: str = "",
    party_size: int = 1,
) -> str:
    calendar = _calendar(method)
    entry = _entry(event, uid, sequence, "CANCELLED" if method == CANCEL else "CONFIRMED")
    attendee = vCalAddress(f"mailto:{attendee_email}")
    if attendee_name:
        attendee.params["cn"] = attendee_name
    attendee.params["role"] = "REQ-PARTICIPANT"
    if method == REQUEST:
        attendee.params["partstat"] = "ACCEPTED"
    attendee.params["rsvp"] = "FALSE"
    if party_size > 1:
        attendee.params["x-num-guests"] = str(party_size - 1)
    entry.add("attendee", attendee)
    calendar.add_component(entry)
    return calendar.to_ical().decode()


def event_file(*, event: Event, uid: str, sequence: int) -> str:
    """The .ics a guest downloads from their page: a plain calendar file (no iTIP METHOD, so no
    client takes it for an invitation to answer), with the UID of the emailed invitation so a
    later update or cancellation email replaces the same entry."""
    calendar = _calendar()
    calendar.add_component(_entry(event, uid, sequence, "CONFIRMED"))
    return calendar.to_ical().decode()
