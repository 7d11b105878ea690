"""Reads for operators: live provider health and queue depth (admin, ops command, health)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

from django.db import connection
from django.db.models import Aggregate, Count, FloatField, Min, Q
from django.db.models.functions import TruncMinute
from django.utils import timezone

from delivery import outbox, provider_state, suppression
from delivery.availability import Availability, availability
from delivery.models import DeliveryAttempt, DeliveryEvent, EmailJob, Provider
from delivery.provider_view import ProviderView


@dataclass(frozen=True)
class ProviderHealth:
    """A provider's live state as operators see it: ``availability`` decides, here as in ranking."""

    provider: Provider
    view: ProviderView
    at: float

    @cached_property
    def availability(self) -> Availability:
        return availability(self.provider, self.view, self.at)

    @property
    def state(self) -> str:
        """closed / open until … / half-open / rate limited until … / out of quota / disabled."""
        return self.availability.describe()

    @property
    def available(self) -> bool:
        return self.availability.available

    @property
    def quota(self) -> str:
        limit = self.provider.daily_quota
        return f"{self.view.quota_used} / {'unlimited' if limit is None else limit}"


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


class MinuteCount(NamedTuple):
    minute: dt.datetime
    accepted: int
    failed: int
    rejected: int


def attempts_per_minute(
    *,
    minutes: int = 60,
    now: dt.datetime | None = None,
    provider_ids: Iterable[int] = (),
) -> dict[int | None, list[MinuteCount]]:
    """Attempts per provider and minute over the last ``minutes`` minutes, the current one last.

    One aggregate query. Every minute of the window is present (zeros filled in), for each
    provider with attempts in the window and each of ``provider_ids``. Failed is every outcome
    but accepted and recipient_rejected; rejections are counted apart: not the provider's fault.
    Attempts whose provider was deleted are under ``None``.
    """
    window = minute_window(minutes=minutes, now=now)
    accepted = Q(outcome=DeliveryAttempt.Outcome.ACCEPTED)
    rejected = Q(outcome=DeliveryAttempt.Outcome.RECIPIENT_REJECTED)
    rows = (
        DeliveryAttempt.objects.filter(
            started_at__gte=window[0], started_at__lt=window[-1] + dt.timedelta(minutes=1)
        )
        .annotate(minute=TruncMinute("started_at", tzinfo=dt.UTC))
        .values("provider_id", "minute")
        .annotate(
            accepted=Count("id", filter=accepted),
            failed=Count("id", filter=~(accepted | rejected)),
            rejected=Count("id", filter=rejected),
        )
        .order_by()  # the model's default ordering would otherwise join the GROUP BY
    )
    counts = {
        (row["provider_id"], row["minute"].astimezone(dt.UTC)): (
            row["accepted"],
            row["failed"],
            row["rejected"],
        )
        for row in rows
    }
    ids = {provider_id for provider_id, _ in counts} | set(provider_ids)
    return {
        provider_id: [
            MinuteCount(minute, *counts.get((provider_id, minute), (0, 0, 0))) for minute in window
        ]
        for provider_id in ids
    }


def minute_window(*, minutes: int, now: dt.datetime | None = None) -> list[dt.datetime]:
    """The starts of the last ``minutes`` minutes in UTC, oldest first, ending with now's."""
    end = (now or timezone.now()).astimezone(dt.UTC).replace(second=0, microsecond=0)
    return [end - dt.timedelta(minutes=back) for back in range(minutes - 1, -1, -1)]


@dataclass(frozen=True)
class Latency:
    """Provider calls' durations over a recent window."""

    p50_ms: float
    p95_ms: float
    calls: int


class _Percentile(Aggregate):
    """PostgreSQL's ordered-set aggregate: the continuous percentile of an expression."""

    function = "PERCENTILE_CONT"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()


def latencies(*, minutes: int = 5, now: dt.datetime | None = None) -> dict[int, Latency]:
    """Per provider, the median and 95th percentile of its calls' durations over the last
    ``minutes`` (every call, whatever its outcome); providers without calls are left out."""
    since = (now or timezone.now()) - dt.timedelta(minutes=minutes)
    calls = DeliveryAttempt.objects.filter(started_at__gte=since, provider__isnull=False)
    if connection.vendor == "postgresql":
        rows = (
            calls.values("provider_id")
            .annotate(
                p50=_Percentile("duration_ms", fraction=0.5),
                p95=_Percentile("duration_ms", fraction=0.95),
                calls=Count("id"),
            )
            .order_by()
        )
        return {r["provider_id"]: Latency(r["p50"], r["p95"], r["calls"]) for r in rows}
    durations: dict[int, list[int]] = {}
    for provider_id, duration in calls.values_list("provider_id", "duration_ms"):
        durations.setdefault(provider_id, []).append(duration)
    return {pk: _percentiles(sorted(values)) for pk, values in durations.items()}


def _percentiles(ordered: list[int]) -> Latency:
    """The same as PERCENTILE_CONT, in Python (SQLite has no such aggregate)."""

    def at(fraction: float) -> float:
        position = fraction * (len(ordered) - 1)
        low, high = int(position), min(int(position) + 1, len(ordered) - 1)
        return ordered[low] + (ordered[high] - ordered[low]) * (position - low)

    return Latency(at(0.5), at(0.95), len(ordered))


def traffic_shares(
    per_minute: dict[int | None, list[MinuteCount]], *, last: int = 10
) -> dict[int | None, list[float | None]]:
    """Each provider's share of all calls, minute by minute, over the last ``last`` minutes of
    ``attempts_per_minute``'s counts; None for a minute without calls."""
    calls = {
        pk: [m.accepted + m.failed + m.rejected for m in minutes[-last:]]
        for pk, minutes in per_minute.items()
    }
    totals = [sum(column) for column in zip(*calls.values(), strict=True)] if calls else []
    return {
        pk: [n / total if total else None for n, total in zip(counts, totals, strict=True)]
        for pk, counts in calls.items()
    }


def delivery_event_counts(*, hours: int = 24) -> dict[str, int]:
    """The providers' events received in the last ``hours``, those matching no job, and the
    addresses suppressed now."""
    since = timezone.now() - dt.timedelta(hours=hours)
    counts = DeliveryEvent.objects.filter(received_at__gte=since).aggregate(
        events=Count("id"), unmatched=Count("id", filter=Q(job__isnull=True))
    )
    return {**counts, "suppressed": suppression.active().count()}
