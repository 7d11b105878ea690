"""Which providers to try for a message, in which order (DESIGN.md §6, Selection).

Candidates are enabled providers whose circuit is not open, that are not blocked by a rate limit,
that have quota left, and (when half-open) whose probe slot is free. A half-open provider comes
first: the next message is its probe. The others are ordered by a weighted random draw on
``weight * (1 - penalty / OPEN_THRESHOLD)``, so healthy providers share traffic in proportion to
their weights and a recovering provider's share grows as its penalty decays. Standby providers
(weight 0) come last. When nothing can take a message, ``retry_at`` says when something can.
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


def score(provider: Provider, view: ProviderView) -> float:
    return provider.weight * max(0.0, 1 - view.penalty / settings.GPMAS_OPEN_THRESHOLD)


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
            # Efraimidis-Spirakis: sorting by u ** (1 / score) is a weighted draw without
            # replacement, so each provider comes first with probability score / sum(scores).
            weighted.append((rng() ** (1 / max(score(provider, view), 1e-9)), provider))
        else:
            standby.append((view.penalty, provider.name, provider))
    ordered = probes + [p for _, p in sorted(weighted, key=lambda item: -item[0])]
    ordered += [p for *_, p in sorted(standby, key=lambda item: item[:2])]
    return ordered, (min(waits) if waits else None)


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
