"""Which providers to try for a message, in which order (docs/ranking.md, "Selection").

Candidates are the providers that can take a message now (``delivery.availability``). A
half-open provider comes first: the next message is its probe. The others are ordered by a
weighted random draw on their score, ``weight * health * speed``:

- health, ``1 - penalty / OPEN_THRESHOLD``: a recovering provider's share grows back as its
  penalty decays;
- speed: providers within ``LATENCY_TOLERANCE`` of the fastest latency (seconds per message,
  a peak EWMA) count as equally fast, so healthy providers share traffic by their weights. A
  slower provider's expected cost is its latency times its calls in flight plus one, and its
  speed falls with the square of that cost against the fastest latency (its messages both take
  longer and hold a slot longer), down to ``MIN_SPEED`` while it has no call in flight: one
  call at a time keeps going to it, a trickle that shows when it is fast again.

Standby providers (weight 0) come last. When nothing can take a message, ``retry_at`` says
when something can.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from django.conf import settings

from delivery import provider_state
from delivery.availability import availability
from delivery.models import Provider
from delivery.provider_view import ProviderView

NO_PROVIDER_RECHECK_SECONDS = 30


@dataclass
class Selection:
    providers: list[Provider]
    views: dict[int, ProviderView] = field(default_factory=dict)
    retry_at: dt.datetime | None = None  # when nothing can take the message now
    slow: set[int] = field(default_factory=set)  # providers to send one call at a time
    shares: dict[int, float] = field(default_factory=dict)  # of the weights, among these


LATENCY_TOLERANCE = 2.0
MIN_SPEED = 0.03
LATENCY_FLOOR_SECONDS = 0.01  # below this, latency differences are noise (a busy machine's)


def score(provider: Provider, view: ProviderView, speed: float = 1.0) -> float:
    health = max(0.0, 1 - view.penalty / settings.GPMAS_OPEN_THRESHOLD)
    return provider.weight * health * speed


def latency(view: ProviderView, at: float) -> float | None:
    """Seconds per message: the estimate, or the age of the oldest call still running if that
    is longer (a provider that has just slowed down shows it before its first slow call ends);
    None before the provider's first call."""
    known = [s for s in (view.latency, view.pending_seconds_per_message(at)) if s is not None]
    return max(*known, LATENCY_FLOOR_SECONDS) if known else None


def expected_cost(view: ProviderView, at: float) -> float | None:
    """Seconds a message sent now can expect to take: latency x (calls in flight + 1)."""
    seconds = latency(view, at)
    return None if seconds is None else seconds * (view.in_flight + 1)


def speeds(
    providers: Sequence[Provider], views: dict[int, ProviderView], at: float
) -> dict[int, float]:
    """Each provider's speed factor (see the module). A provider within ``LATENCY_TOLERANCE``
    of the fastest latency is not slow, however many calls it has in flight: providers take
    calls side by side, so a busy fast provider is still fast. A slower one is weighed by its
    expected cost against the fastest latency, so each call it already has makes it dearer."""
    known = [s for p in providers if (s := latency(views[p.pk], at)) is not None]
    if not known:
        return dict.fromkeys((p.pk for p in providers), 1.0)
    allowed = LATENCY_TOLERANCE * min(known)
    return {p.pk: _speed(views[p.pk], allowed, at) for p in providers}


def _speed(view: ProviderView, allowed: float, at: float) -> float:
    seconds = latency(view, at)
    if seconds is None or seconds <= allowed:
        return 1.0
    # The floor keeps one call going to a slow provider, never more: each of its calls holds a
    # slot as long as many calls to the others.
    floor = MIN_SPEED if view.in_flight == 0 else 0.0
    return max(floor, (allowed / expected_cost(view, at)) ** 2)


def order(
    providers: Sequence[Provider],
    views: dict[int, ProviderView],
    *,
    at: float,
    rng: Callable[[], float] = random.random,
) -> tuple[list[Provider], float | None]:
    """The candidates in the order to try them, and when to retry if there are none."""
    probes, weighted, standby, waits = [], [], [], []
    for provider in providers:
        view = views[provider.pk]
        can = availability(provider, view, at)
        if not can.available:
            if can.until is not None:
                waits.append(can.until)
        elif can.probe:
            probes.append(provider)
        elif provider.weight > 0:
            weighted.append(provider)
        else:
            standby.append((view.penalty, provider.name, provider))
    ordered = probes + weighted_draw(weighted, views, rng, at)
    ordered += [p for *_, p in sorted(standby, key=lambda item: item[:2])]
    return ordered, (min(waits) if waits else None)


def weighted_draw(
    providers: list[Provider],
    views: dict[int, ProviderView],
    rng: Callable[[], float],
    at: float,
) -> list[Provider]:
    """Efraimidis-Spirakis: sorting by u ** (1 / score) is a weighted draw without replacement,
    so each provider comes first with probability score / sum(scores)."""
    speed = speeds(providers, views, at)
    keys = {p.pk: rng() ** (1 / max(score(p, views[p.pk], speed[p.pk]), 1e-9)) for p in providers}
    return sorted(providers, key=lambda p: -keys[p.pk])


def select(
    providers: Sequence[Provider] | None = None,
    *,
    at: float | None = None,
    views: dict[int, ProviderView] | None = None,
) -> Selection:
    """Order ``providers`` (default: every enabled one) for one message; one Redis round trip,
    none when the caller hands in ``views`` it read already."""
    at = provider_state.now() if at is None else at
    if providers is None:
        providers = list(Provider.objects.filter(enabled=True))
    if views is None:
        views = provider_state.read_views(providers, at=at) if providers else {}
    ordered, wait = order(providers, views, at=at)
    if ordered:
        slow = {pk for pk, speed in speeds(ordered, views, at).items() if speed < 1}
        total = sum(p.weight for p in ordered) or 1
        shares = {p.pk: p.weight / total for p in ordered}
        return Selection(ordered, views, slow=slow, shares=shares)
    retry_at = wait if wait is not None else at + NO_PROVIDER_RECHECK_SECONDS
    return Selection([], views, retry_at=dt.datetime.fromtimestamp(retry_at, tz=dt.UTC))
