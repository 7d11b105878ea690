"""Links on the guest's page: add the event to Google or Outlook calendar, find the place on a
map. They carry the event's details only, never the guest's token."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode

from events.models import Event

DETAILS_LIMIT = 1000  # the links travel in a URL: keep the description short


def _utc(value: dt.datetime, fmt: str) -> str:
    return value.astimezone(dt.UTC).strftime(fmt)


def google_calendar_url(event: Event) -> str:
    dates = f"{_utc(event.starts_at, '%Y%m%dT%H%M%SZ')}/{_utc(event.ends_at, '%Y%m%dT%H%M%SZ')}"
    query = {
        "action": "TEMPLATE",
        "text": event.title,
        "dates": dates,
        "details": event.description[:DETAILS_LIMIT],
        "location": event.location,
        "ctz": event.timezone,
    }
    return "https://calendar.google.com/calendar/render?" + urlencode(query)


def outlook_calendar_url(event: Event) -> str:
    query = {
        "path": "/calendar/action/compose",
        "rru": "addevent",
        "subject": event.title,
        "startdt": _utc(event.starts_at, "%Y-%m-%dT%H:%M:%SZ"),
        "enddt": _utc(event.ends_at, "%Y-%m-%dT%H:%M:%SZ"),
        "body": event.description[:DETAILS_LIMIT],
        "location": event.location,
    }
    return "https://outlook.live.com/calendar/0/deeplink/compose?" + urlencode(query)


def map_url(event: Event) -> str:
    """An OpenStreetMap search for the place (empty when the event has no place)."""
    if not event.location.strip():
        return ""
    return "https://www.openstreetmap.org/search?" + urlencode({"query": event.location})
