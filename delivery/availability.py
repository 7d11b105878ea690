"""Can a provider take a message now? The one answer to that question.

Ranking uses it to pick candidates; ``/healthz``, the provider health page, the organizers'
banner and ``gpmas status`` use it to say which providers are up. The reservation script in
``delivery.provider_state`` re-checks the same rules atomically right before a call, because the
state read here may be a few milliseconds old, and also the per-second rate, which changes too
fast to rank on (docs/ranking.md).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from delivery import provider_state
from delivery.models import Provider
from delivery.provider_view import HALF_OPEN, OPEN, ProviderView

# Why a provider cannot take a message now.
DISABLED = "disabled"
CIRCUIT_OPEN = "open"
RATE_LIMITED = "rate_limited"
OUT_OF_QUOTA = "out_of_quota"
PROBE_BUSY = "probe_busy"  # half-open, and its one probe message is on its way


@dataclass(frozen=True)
class Availability:
    refused_because: str = ""  # empty: available now
    until: float | None = None  # epoch seconds when it may take a message again, if known
    probe: bool = False  # available, and the next message is the probe of a half-open circuit

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
        return "half-open" if self.probe else "closed"


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
    return Availability()


def clock(epoch: float | None) -> str:
    if epoch is None:
        return "unknown"
    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC).strftime("%H:%M:%S UTC")
