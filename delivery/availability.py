"""Can a provider take a message now? The one answer to that question.

Ranking uses it to pick candidates; ``/healthz``, the provider health page, the organizers'
banner and ``gpmas status`` use it to say which providers are up. The reservation script in
``delivery.provider_state`` re-checks the same rules atomically right before a call, because the
state read here may be a few milliseconds old, and also the per-second rate, which changes too
fast to rank on (docs/ranking.md).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass

from django.conf import settings

from delivery import provider_state
from delivery.models import Provider
from delivery.provider_view import HALF_OPEN, OPEN, ProviderView

# Why a provider cannot take a message now.
DISABLED = "disabled"
CIRCUIT_OPEN = "open"
RATE_LIMITED = "rate_limited"
OUT_OF_QUOTA = "out_of_quota"
PROBE_BUSY = "probe_busy"  # half-open, and its one probe message is on its way

# The early warning: still closed (sending), but going wrong. Failing when this many calls in a
# row failed, or when the penalty is past this share of the threshold that opens the circuit.
FAILING_IN_A_ROW = 2
FAILING_SHARE_OF_THRESHOLD = 0.5

# What the states mean, for the health page and ``gpmas status`` (one text, two places).
LEGEND = (
    ("closed", "sending normally: the circuit is closed and calls go through."),
    (
        "failing",
        "still sending, but recent calls failed (2 or more in a row, or a penalty past half of "
        "the threshold); the circuit opens if it goes on.",
    ),
    ("open", "not sending: too many failures; no calls until the time shown."),
    ("half-open", "trying again: one probe message goes; success closes it, failure reopens."),
    (
        "penalty",
        "recent failures, weighted, halving every {half_life:g} s; the circuit opens at "
        "{threshold:g}. 0 is perfect health.",
    ),
)


@dataclass(frozen=True)
class Availability:
    refused_because: str = ""  # empty: available now
    until: float | None = None  # epoch seconds when it may take a message again, if known
    probe: bool = False  # available, and the next message is the probe of a half-open circuit
    failures: int = 0  # calls failed in a row, when that makes a closed provider "failing"
    failing: bool = False  # available and closed, but going wrong: the early warning

    @property
    def available(self) -> bool:
        return not self.refused_because

    def describe(self) -> str:
        """In words, for operators: "closed", "open until 04:40:14 UTC", "half-open", …"""
        if self.refused_because == CIRCUIT_OPEN:
            return f"open until {clock(self.until)}"
        if self.refused_because == RATE_LIMITED:
            return f"rate limited until {clock(self.until)}"
        if self.refused_because == OUT_OF_QUOTA:
            return "out of quota"
        if self.refused_because == PROBE_BUSY:
            return "half-open, probe in flight"
        if self.refused_because == DISABLED:
            return DISABLED
        if self.probe:
            return "half-open"
        if self.failing:
            return f"failing ({self.failures} in a row, still closed)"
        return "closed"


def availability(provider: Provider, view: ProviderView, at: float) -> Availability:
    if not provider.enabled:
        return Availability(DISABLED)
    if view.circuit == OPEN:
        return Availability(CIRCUIT_OPEN, view.open_until)
    if view.blocked_until > at:
        return Availability(RATE_LIMITED, view.blocked_until)
    if provider.daily_quota is not None and view.quota_used >= provider.daily_quota:
        reset_at = provider_state.next_quota_reset(provider.quota_reset_tz, at)
        return Availability(OUT_OF_QUOTA, reset_at)
    if view.circuit == HALF_OPEN:
        if view.probe_busy:
            return Availability(PROBE_BUSY, at + 1)  # the probe in flight decides soon
        return Availability(probe=True)
    return Availability(failures=view.consecutive_failures, failing=is_failing(view))


def is_failing(view: ProviderView) -> bool:
    return (
        view.consecutive_failures >= FAILING_IN_A_ROW
        or view.penalty > FAILING_SHARE_OF_THRESHOLD * settings.GPMAS_OPEN_THRESHOLD
    )


def legend() -> list[tuple[str, str]]:
    numbers = {
        "half_life": settings.GPMAS_PENALTY_HALF_LIFE_SECONDS,
        "threshold": settings.GPMAS_OPEN_THRESHOLD,
    }
    return [(term, text.format(**numbers)) for term, text in LEGEND]


def operator_zone() -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(settings.GPMAS_TIME_ZONE)


def clock(epoch: float | None) -> str:
    """A moment in the operators' zone (``GPMAS_TIME_ZONE``), named: "04:40:14 CET"."""
    if epoch is None:
        return "unknown"
    return dt.datetime.fromtimestamp(epoch, tz=operator_zone()).strftime("%H:%M:%S %Z")
