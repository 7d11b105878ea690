"""How an event's time reads to a person: in the event's own zone, named."""

import datetime as dt

from django.utils import dateformat

from events.models import Event


def local(event: Event, value: dt.datetime) -> dt.datetime:
    return value.astimezone(event.tzinfo)


def format_moment(event: Event, value: dt.datetime) -> str:
    return dateformat.format(local(event, value), "l j F Y, H:i T")


def format_when(event: Event) -> str:
    """``Saturday 1 June 2030, 18:00–22:00 CEST (Europe/Berlin)``."""
    start, end = local(event, event.starts_at), local(event, event.ends_at)
    begin = dateformat.format(start, "l j F Y, H:i")
    if start.date() == end.date():
        text = f"{begin}–{dateformat.format(end, 'H:i T')}"
    else:
        text = f"{begin} – {dateformat.format(end, 'l j F Y, H:i T')}"
    return f"{text} ({event.timezone})"


def format_day(event: Event, value: dt.datetime) -> str:
    """``18 Dec`` (with the year when not this year), in the event's zone."""
    day = local(event, value)
    return dateformat.format(
        day, "j M" if day.year == local(event, dt.datetime.now(dt.UTC)).year else "j M Y"
    )


def format_time(event: Event, value: dt.datetime) -> str:
    return dateformat.format(local(event, value), "H:i T")
