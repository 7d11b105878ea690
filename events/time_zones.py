"""The new-event form's time-zone picker: common zones first, then the rest by region, the
``Etc/`` zones last with their real offset (``Etc/GMT+5`` is five hours *behind* UTC). Aliases
and oddities (``Factory``, ``localtime``, ``US/Eastern``, ``EST5EDT``) are not offered; an
event already in one keeps it."""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo

COMMON = (
    "UTC",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Paris",
    "Europe/Madrid",
    "Europe/Rome",
    "Europe/Amsterdam",
    "Europe/Stockholm",
    "Europe/Warsaw",
    "Europe/Athens",
    "Europe/Istanbul",
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Toronto",
    "America/Mexico_City",
    "America/Sao_Paulo",
    "Africa/Lagos",
    "Africa/Johannesburg",
    "Asia/Dubai",
    "Asia/Kolkata",
    "Asia/Singapore",
    "Asia/Shanghai",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Pacific/Auckland",
)
REGIONS = (
    "Africa",
    "America",
    "Antarctica",
    "Arctic",
    "Asia",
    "Atlantic",
    "Australia",
    "Europe",
    "Indian",
    "Pacific",
)

Choices = list[tuple[str, str | list[tuple[str, str]]]]


def offset_label(name: str, when: dt.datetime) -> str:
    """``UTC−05:00`` (a real minus sign), the zone's offset at ``when``."""
    offset = when.astimezone(zoneinfo.ZoneInfo(name)).utcoffset() or dt.timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "−"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours:02d}:{rest:02d}"


def label(name: str, when: dt.datetime) -> str:
    return f"{name.replace('_', ' ')} ({offset_label(name, when)})"


@functools.lru_cache(maxsize=4)
def _choices(hour: dt.datetime) -> tuple:
    available = zoneinfo.available_timezones()
    groups: Choices = [("Common", [(z, label(z, hour)) for z in COMMON if z in available])]
    for region in REGIONS:
        names = sorted(z for z in available if z.split("/")[0] == region)
        groups.append((region, [(z, label(z, hour)) for z in names]))
    etc = sorted(
        (z for z in available if z.startswith("Etc/GMT") and z[7:] not in ("", "0", "+0", "-0")),
        key=lambda z: -int(z[7:]),
    )
    groups.append(("Fixed offsets (Etc)", [(z, label(z, hour)) for z in etc]))
    return tuple((group, tuple(options)) for group, options in groups)


def time_zone_choices(current: str = "") -> Choices:
    """The picker's optgroups; ``current`` (an event's zone) is kept even if not offered."""
    hour = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    choices: Choices = [(group, list(options)) for group, options in _choices(hour)]
    offered = {name for _, options in choices for name, _ in options}
    if current and current not in offered and current in zoneinfo.available_timezones():
        choices.insert(0, ("Current", [(current, label(current, hour))]))
    return choices
