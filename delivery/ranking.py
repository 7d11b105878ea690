"""Which providers to try for a message, in which order (docs/ranking.md, "Selection").

Candidates are the providers that can take a message now (``delivery.availability``). A
half-open provider comes first: the next message is its probe. The others are ordered by a
weighted random draw on their score, ``weight * health * speed``:

- health, ``1 - penalty / OPEN_THRESHOLD``: a recovering provider's share grows back as its
  penalty decays;
- speed: each provider's expected cost is its latency (seconds per message, a peak EWMA) times
  its calls in flight plus one. Providers within ``LATENCY_TOLERANCE`` of the cheapest count as
  equally fast, so healthy providers share traffic by their weights; beyond it a provider's
  speed falls with the square of how much slower it is (its messages both take longer and
  hold a slot longer), down to ``MIN_SPEED``, a trickle that shows when it is fast again.

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
from delivery.provider_state import ProviderView

NO_PROVIDER_RECHECK_SECONDS = 30


@dataclass
class Selection:
    providers: list[Provider]
    views: dict[int, ProviderView] = field(default_factory=dict)
    retry_at: dt.datetime | None = None  # when nothing can take the message now


LATENCY_TOLERANCE = 2.0
MIN_SPEED = 0.03
LATENCY_FLOOR_SECONDS = 0.001  # below this, latency differences are noise


def score(provider: Provider, view: ProviderView, speed: float = 1.0) -> float:
    health = max(0.0, 1 - view.penalty / settings.GPMAS_OPEN_THRESHOLD)
    return provider.weight * health * speed


def expected_cost(view: ProviderView) -> float | None:
    """Seconds a message sent now can expect to take; None before the provider's first call."""
    if view.latency is None:
        return None
    return max(view.latency, LATENCY_FLOOR_SECONDS) * (view.in_flight + 1)


def speeds(providers: Sequence[Provider], views: dict[int, ProviderView]) -> dict[int, float]:
    """Each provider's speed factor against the cheapest of ``providers`` (see the module)."""
    costs = {p.pk: expected_cost(views[p.pk]) for p in providers}
    known = [cost for cost in costs.values() if cost is not None]
    if not known:
        return dict.fromkeys(costs, 1.0)
    allowed = LATENCY_TOLERANCE * min(known)
    return {
        pk: 1.0 if cost is None or cost <= allowed else max(MIN_SPEED, (allowed / cost) ** 2)
        for pk, cost in costs.items()
    }


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
    ordered = probes + weighted_draw(weighted, views, rng)
    ordered += [p for *_, p in sorted(standby, key=lambda item: item[:2])]
    return ordered, (min(waits) if waits else None)


def weighted_draw(
    providers: list[Provider], views: dict[int, ProviderView], rng: Callable[[], float]
) -> list[Provider]:
    """Efraimidis-Spirakis: sorting by u ** (1 / score) is a weighted draw without replacement,
    so each provider comes first with probability score / sum(scores)."""
    speed = speeds(providers, views)
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
        return Selection(ordered, views)
    retry_at = wait if wait is not None else at + NO_PROVIDER_RECHECK_SECONDS
    return Selection([], views, retry_at=dt.datetime.fromtimestamp(retry_at, tz=dt.UTC))
