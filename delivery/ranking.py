"""Which providers to try for a message, in order (DESIGN.md §6).

For now: enabled providers by weight, standby providers (weight 0) last. Penalty scores, circuit
breaking and quotas replace this ordering in the ranking issue; the send path only needs
``select()``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.utils import timezone

from delivery.models import Provider

NO_PROVIDER_RECHECK = dt.timedelta(seconds=30)


@dataclass
class Selection:
    providers: list[Provider]
    # When nothing can take the message: when to look again.
    retry_at: dt.datetime | None = None


def select(*, pinned: Provider | None = None) -> Selection:
    providers = Provider.objects.filter(enabled=True)
    if pinned is not None:
        providers = providers.filter(pk=pinned.pk)
    weighted = [p for p in providers if p.weight > 0]
    standby = [p for p in providers if p.weight == 0]
    ordered = sorted(weighted, key=lambda p: (-p.weight, p.name)) + sorted(
        standby, key=lambda p: p.name
    )
    if not ordered:
        return Selection([], retry_at=timezone.now() + NO_PROVIDER_RECHECK)
    return Selection(ordered)
