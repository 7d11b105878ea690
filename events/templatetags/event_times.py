"""Times in the event's own zone: ``{{ event|when }}``, ``{{ value|in_zone_of:event }}``."""

from django import template

from events.display import format_day, format_moment, format_time, format_when

register = template.Library()


@register.filter
def when(event) -> str:
    return format_when(event)


@register.filter
def in_zone_of(value, event) -> str:
    return format_moment(event, value) if value else ""


@register.filter
def day_in_zone_of(value, event) -> str:
    return format_day(event, value) if value else ""


@register.filter
def time_in_zone_of(value, event) -> str:
    return format_time(event, value) if value else ""
