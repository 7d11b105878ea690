"""Provider health for operators (staff only): live state, attempts per minute, queue depth.

The chart is inline SVG laid out here and drawn by the template: no JavaScript, no external
assets, so it works under a strict Content-Security-Policy.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import redis
from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from delivery import availability, reputation, selectors
from delivery.models import Provider
from delivery.reputation import Reputation
from delivery.selectors import Latency, MinuteCount, ProviderHealth

WINDOW_MINUTES = 60
LATENCY_MINUTES = 5  # the window of the latency percentiles
SHARE_MINUTES = 10  # the minutes of the traffic share table
REDIS_DOWN = "unknown (Redis unavailable)"
# Colour-blind safe (Okabe-Ito); rejections are grey: the recipient's problem, not the provider's.
SERIES = (("accepted", "#009e73"), ("failed", "#d55e00"), ("rejected", "#8c8c8c"))


@dataclass(frozen=True)
class ProviderReport:
    provider: Provider
    health: ProviderHealth | None  # None when Redis is unreachable
    minutes: list[MinuteCount]
    latency: Latency | None  # None without calls in the latency window
    shares: list[float | None]  # share of all calls, minute by minute, oldest first
    reputation: Reputation  # bounces and complaints over the last 24 h

    @property
    def failing(self) -> bool:
        return bool(self.health and self.health.availability.failing)

    @property
    def state(self) -> str:
        if self.health:
            return self.health.state
        return "disabled" if not self.provider.enabled else REDIS_DOWN


@dataclass(frozen=True)
class Report:
    generated_at: dt.datetime
    queue: dict[str, int]
    oldest_due_age_seconds: float | None
    redis_down: bool
    providers: list[ProviderReport]
    share_minutes: list[dt.datetime]  # the columns of the share table


def health_report(*, now: dt.datetime | None = None) -> Report:
    now = now or timezone.now()
    providers = list(Provider.objects.all())
    try:
        health = {item.provider.pk: item for item in selectors.provider_health(providers)}
    except redis.RedisError:
        health = None
    minutes = selectors.attempts_per_minute(
        minutes=WINDOW_MINUTES, now=now, provider_ids=[p.pk for p in providers]
    )
    shares = selectors.traffic_shares(minutes, last=SHARE_MINUTES)
    latency = selectors.latencies(minutes=LATENCY_MINUTES, now=now)
    window = selectors.minute_window(minutes=SHARE_MINUTES, now=now)
    rates = reputation.reputations(now=now)
    return Report(
        generated_at=now,
        queue=selectors.queue_depth(),
        oldest_due_age_seconds=selectors.oldest_due_age_seconds(),
        redis_down=health is None,
        providers=[
            ProviderReport(
                p,
                health.get(p.pk) if health else None,
                minutes[p.pk],
                latency.get(p.pk),
                shares[p.pk],
                rates.get(p.pk, Reputation()),
            )
            for p in providers
        ],
        share_minutes=window,
    )


# --- The chart: geometry in viewBox units, drawn by gpmas/provider_health.html ---

WIDTH, HEIGHT = 900, 170
PLOT_LEFT, PLOT_RIGHT, PLOT_TOP, PLOT_BOTTOM = 52, 890, 30, 140


@dataclass(frozen=True)
class Bar:
    series: str
    colour: str
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Column:
    title: str
    x: float
    width: float
    bars: tuple[Bar, ...]


@dataclass(frozen=True)
class LegendItem:
    text: str
    colour: str
    x: float

    @property
    def text_x(self) -> float:
        return self.x + 14


@dataclass(frozen=True)
class Chart:
    label: str
    span_minutes: int
    y_max: int
    columns: tuple[Column, ...]
    legend: tuple[LegendItem, ...]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = PLOT_LEFT
    right: int = PLOT_RIGHT
    top: int = PLOT_TOP
    bottom: int = PLOT_BOTTOM

    @property
    def middle(self) -> float:
        return (self.left + self.right) / 2

    @property
    def plot_height(self) -> int:
        return self.bottom - self.top

    @property
    def half_span_minutes(self) -> int:
        return self.span_minutes // 2


def totals(minutes: list[MinuteCount]) -> dict[str, int]:
    return {name: sum(getattr(m, name) for m in minutes) for name, _ in SERIES}


def summary(name: str, minutes: list[MinuteCount]) -> str:
    counts = ", ".join(f"{n} {series}" for series, n in totals(minutes).items())
    span = "hour" if len(minutes) == 60 else f"{len(minutes)} minutes"
    return f"{name}: {counts} in the last {span}"


def chart_geometry(name: str, minutes: list[MinuteCount]) -> Chart:
    """Stacked bars, one column per minute (oldest left); the tallest column reaches the top."""
    y_max = max([m.accepted + m.failed + m.rejected for m in minutes] + [1])
    step = (PLOT_RIGHT - PLOT_LEFT) / max(len(minutes), 1)
    scale = (PLOT_BOTTOM - PLOT_TOP) / y_max
    columns = tuple(
        Column(
            title=f"{m.minute:%H:%M} UTC: {m.accepted} accepted, {m.failed} failed, "
            f"{m.rejected} rejected",
            x=round(PLOT_LEFT + i * step, 2),
            width=round(step, 2),
            bars=_stack(m, x=PLOT_LEFT + i * step + 1, width=step - 2, scale=scale),
        )
        for i, m in enumerate(minutes)
    )
    legend = tuple(
        LegendItem(f"{series} ({n})", colour, PLOT_LEFT + 130 * i)
        for i, ((series, colour), n) in enumerate(
            zip(SERIES, totals(minutes).values(), strict=True)
        )
    )
    return Chart(summary(name, minutes), len(minutes), y_max, columns, legend)


def _stack(minute: MinuteCount, *, x: float, width: float, scale: float) -> tuple[Bar, ...]:
    bars, y = [], float(PLOT_BOTTOM)
    for series, colour in SERIES:
        count = getattr(minute, series)
        if not count:
            continue
        # At least one unit high, so a single failure among hundreds of accepts stays visible.
        height = max(count * scale, 1.0)
        y -= height
        bars.append(
            Bar(series, colour, round(x, 2), round(y, 2), round(width, 2), round(height, 2))
        )
    return tuple(bars)


# --- Views ---


@require_GET
@staff_member_required
def provider_health_page(request: HttpRequest) -> HttpResponse:
    report = health_report()
    rows = [(row, chart_geometry(row.provider.name, row.minutes)) for row in report.providers]
    context = {
        "report": report,
        "rows": rows,
        "zone": settings.GPMAS_TIME_ZONE,
        "legend": availability.legend(),
        "threshold": settings.GPMAS_OPEN_THRESHOLD,
        "failing": [r.provider.name for r in report.providers if r.failing],
        "reputation_note": reputation.NOTE,
    }
    return render(request, "gpmas/provider_health.html", context)


@require_GET
@staff_member_required
def provider_health_json(request: HttpRequest) -> JsonResponse:
    report = health_report()
    return JsonResponse(
        {
            "generated_at": report.generated_at.isoformat(),
            "queue": report.queue,
            "oldest_due_age_seconds": report.oldest_due_age_seconds,
            "providers": [_provider_json(row) for row in report.providers],
        }
    )


def _provider_json(row: ProviderReport) -> dict:
    provider, view = row.provider, row.health.view if row.health else None
    return {
        "id": provider.pk,
        "name": provider.name,
        "kind": provider.kind,
        "enabled": provider.enabled,
        "weight": provider.weight,
        "state": row.state,
        "failing": row.failing if row.health else None,
        "penalty": round(view.penalty, 2) if view else None,
        "consecutive_failures": view.consecutive_failures if view else None,
        "quota": {"used": view.quota_used if view else None, "limit": provider.daily_quota},
        "last_error": view.last_error if view else None,
        "latency_ms": _latency_json(row.latency),
        "in_flight": view.in_flight if view else None,
        "share_per_minute": row.shares,
        "last_24h": _reputation_json(row.reputation),
        "minutes": [{**m._asdict(), "minute": m.minute.isoformat()} for m in row.minutes],
    }


def _latency_json(latency: Latency | None) -> dict | None:
    if latency is None:
        return None
    return {"p50": round(latency.p50_ms), "p95": round(latency.p95_ms), "calls": latency.calls}


def _reputation_json(rates: Reputation) -> dict:
    return {
        "sent": rates.sent,
        "bounces": rates.bounces,
        "complaints": rates.complaints,
        "bounce_rate": rates.bounce_rate,
        "complaint_rate": rates.complaint_rate,
        "warnings": rates.warnings(),
    }
