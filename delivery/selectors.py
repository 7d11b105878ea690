"""Reads for operators: live provider health and queue depth (admin, ops command, health)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Count, Min
from django.utils import timezone

from delivery import outbox, provider_state
from delivery.models import EmailJob, Provider
from delivery.provider_state import CLOSED, HALF_OPEN, OPEN, ProviderView


@dataclass(frozen=True)
class ProviderHealth:
    provider: Provider
    view: ProviderView
    at: float

    @property
    def state(self) -> str:
        """closed / open until … / half-open / rate limited until … / out of quota / disabled."""
        if not self.provider.enabled:
            return "disabled"
        if self.view.circuit == OPEN:
            return f"open until {_clock(self.view.open_until)}"
        if self.view.circuit == HALF_OPEN:
            return "half-open"
        if self.view.blocked_until > self.at:
            return f"rate limited until {_clock(self.view.blocked_until)}"
        if self.out_of_quota:
            return "out of quota"
        return CLOSED

    @property
    def available(self) -> bool:
        return self.state in (CLOSED, "half-open")

    @property
    def out_of_quota(self) -> bool:
        quota = self.provider.daily_quota
        return quota is not None and self.view.quota_used >= quota

    @property
    def quota(self) -> str:
        limit = self.provider.daily_quota
        return f"{self.view.quota_used} / {'unlimited' if limit is None else limit}"


def _clock(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC).strftime("%H:%M:%S UTC")


def provider_health(providers=None) -> list[ProviderHealth]:
    providers = list(Provider.objects.all() if providers is None else providers)
    at = provider_state.now()
    views = provider_state.read_views(providers, at=at) if providers else {}
    return [ProviderHealth(p, views[p.pk], at) for p in providers]


def queue_depth() -> dict[str, int]:
    counts = dict(EmailJob.objects.values_list("status").annotate(n=Count("id")))
    return {status: counts.get(status, 0) for status in EmailJob.Status.values}


def oldest_due_age_seconds() -> float | None:
    now = timezone.now()
    oldest = outbox.due_jobs(now).aggregate(oldest=Min("next_attempt_at"))["oldest"]
    return (now - oldest).total_seconds() if oldest else None
