"""The system's state as operators see it: normal, degraded, halted, or no provider available.

Composed here, above the apps, because it needs both the halt switch and the providers.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from delivery import selectors
from reliability import halt

NORMAL, DEGRADED, HALTED, NO_PROVIDER = "normal", "degraded", "halted", "no provider available"


@dataclass(frozen=True)
class SystemState:
    code: str
    message: str

    @property
    def is_normal(self) -> bool:
        return self.code == NORMAL


def system_state(
    health: list[selectors.ProviderHealth] | None = None, *, staff: bool = False
) -> SystemState:
    """``staff`` also hears the early warning: providers still closed but failing."""
    control = halt.current()
    if control.halted:
        return SystemState(HALTED, f"All sending is halted: {control.reason}. Emails wait.")
    try:
        health = selectors.provider_health() if health is None else health
    except redis.RedisError:
        return SystemState(DEGRADED, "Provider state is unavailable (Redis); emails wait.")
    enabled = [item for item in health if item.provider.enabled]
    down = [item for item in enabled if not item.available]
    if not enabled or len(down) == len(enabled):
        why = "; ".join(f"{item.provider.name} {item.state}" for item in down) or "none enabled"
        return SystemState(NO_PROVIDER, f"No provider can send right now ({why}). Emails wait.")
    if down:
        why = "; ".join(f"{item.provider.name} {item.state}" for item in down)
        return SystemState(DEGRADED, f"Some providers are unavailable: {why}.")
    failing = [item for item in enabled if item.availability.failing]
    if staff and failing:
        why = "; ".join(f"{item.provider.name} {item.state}" for item in failing)
        return SystemState(DEGRADED, f"Some providers are failing, still sending: {why}.")
    return SystemState(NORMAL, "All providers available.")
