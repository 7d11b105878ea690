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
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from django.conf import settings

from delivery import provider_state
from delivery.models import Provider
from delivery.provider_state import HALF_OPEN, OPEN, ProviderView

NO_PROVIDER_RECHECK_SECONDS = 30


@dataclass
class Selection:
    providers: list[Provider]
    views: dict[int, ProviderView] = field(default_factory=dict)
    retry_at: dt.datetime | None = None  # when nothing can take the message now
    fresh: bool = True  # False: made on provider state another selection read moments ago


def score(provider: Provider, view: ProviderView) -> float:
    return provider.weight * max(0.0, 1 - view.penalty / settings.GPMAS_OPEN_THRESHOLD)


def available_again_at(provider: Provider, view: ProviderView, at: float) -> float | None:
    """None if the provider can take a message now, else the earliest time it can."""
    if view.circuit == OPEN:
        return view.open_until
    if view.blocked_until > at:
        return view.blocked_until
    if provider.daily_quota is not None and view.quota_used >= provider.daily_quota:
        return provider_state.next_quota_reset(provider.quota_reset_tz, at)
    if view.circuit == HALF_OPEN and view.probe_busy:
        return at + 1  # the probe in flight decides soon
    return None


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
        wait = available_again_at(provider, view, at)
        if wait is not None:
            waits.append(wait)
        elif view.circuit == HALF_OPEN:
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


class BatchRanking:
    """Selections for the messages of one batch, over the provider rows read for it.

    The providers' live state is read from Redis for a selection and reused by the next ones
    for a few milliseconds, saving a round trip per message on a busy worker. That is safe: the
    reservation after every selection re-checks atomically what must be exact (an open circuit,
    a rate-limit block, the quota, the probe slot), and a penalty a few milliseconds old only
    skews one weighted draw. After any failure the state is read afresh.
    """

    FRESH_FOR_SECONDS = 0.02

    def __init__(self, providers: Sequence[Provider]) -> None:
        self.providers = list(providers)
        self._views: dict[int, ProviderView] | None = None
        self._read_at = 0.0

    def select(self, candidates: Sequence[Provider] | None = None) -> Selection:
        at = provider_state.now()
        fresh = self._views is None or time.monotonic() - self._read_at >= self.FRESH_FOR_SECONDS
        if fresh:
            self._views = provider_state.read_views(self.providers, at=at)
            self._read_at = time.monotonic()
        selection = select(
            self.providers if candidates is None else candidates, at=at, views=self._views
        )
        selection.fresh = fresh
        return selection

    def forget(self) -> None:
        self._views = None
