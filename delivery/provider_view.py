"""What one provider's live state says, decoded from the Redis replies of one selection's read
(``delivery.provider_state.read_views``): the penalty decayed to now, the circuit, quota, probe,
latency and calls in flight (docs/ranking.md)."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass(frozen=True)
class ProviderView:
    """One provider's live state, as one selection sees it."""

    penalty: float
    consecutive_failures: int
    circuit: str
    open_until: float
    times_opened: int
    blocked_until: float
    quota_used: int
    probe_busy: bool
    last_error: str
    last_error_at: float | None
    latency: float | None = None  # seconds per message, a peak EWMA; None before any call
    in_flight: int = 0  # calls started and not finished, across every worker
    # The oldest of those calls: when it started, and how many messages it carries. Its age is
    # a lower bound of the provider's latency before any slow call has ended.
    oldest_call_started: float | None = None
    oldest_call_messages: int = 1

    def pending_seconds_per_message(self, at: float) -> float | None:
        if self.oldest_call_started is None:
            return None
        return max(0.0, at - self.oldest_call_started) / self.oldest_call_messages


def view_from_replies(
    raw: list,
    quota_used: bytes | None,
    probe: bytes | None,
    in_flight: int,
    oldest: list[tuple[bytes, float]],
    at: float,
) -> ProviderView:
    p, t, cf, opened, open_until, times, blocked, last_error, last_error_at, lat = (
        value.decode() if value is not None else None for value in raw
    )
    penalty = float(p or 0)
    if t is not None and at > float(t):
        penalty *= 0.5 ** ((at - float(t)) / settings.GPMAS_PENALTY_HALF_LIFE_SECONDS)
    open_until_at = float(open_until or 0)
    circuit = CLOSED if opened != "1" else OPEN if at < open_until_at else HALF_OPEN
    return ProviderView(
        penalty=penalty,
        consecutive_failures=int(cf or 0),
        circuit=circuit,
        open_until=open_until_at,
        times_opened=int(times or 0),
        blocked_until=float(blocked or 0),
        quota_used=int(quota_used or 0),
        probe_busy=probe is not None,
        last_error=last_error or "",
        last_error_at=float(last_error_at) if last_error_at else None,
        latency=float(lat) if lat is not None else None,
        in_flight=int(in_flight or 0),
        **_oldest_call(oldest),
    )


def _oldest_call(oldest: list[tuple[bytes, float]]) -> dict:
    """The oldest call in flight, from its sorted-set entry: member ``<id>:<messages>``, score
    the time after which it cannot still run (its start + ``GPMAS_PROBE_TIMEOUT_SECONDS``)."""
    if not oldest:
        return {}
    member, until = oldest[0]
    messages = member.decode().rpartition(":")[2]
    return {
        "oldest_call_started": until - settings.GPMAS_PROBE_TIMEOUT_SECONDS,
        "oldest_call_messages": int(messages) if messages.isdigit() else 1,
    }
