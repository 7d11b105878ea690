"""What operators see of a slow provider: latency percentiles, calls in flight, and each
provider's share of calls per minute, on the health page, its JSON, /healthz and gpmas status."""

import datetime as dt
import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from delivery import provider_state, selectors
from delivery.models import DeliveryAttempt, Provider
from tests.delivery.jobs import new_job

pytestmark = pytest.mark.django_db
DURATIONS = list(range(0, 201, 10))  # 21 calls: median 100 ms, 95th percentile 190 ms


def calls(provider: Provider, durations: list[int], *, ago: dt.timedelta) -> None:
    started = timezone.now() - ago
    job = new_job()
    DeliveryAttempt.objects.bulk_create(
        DeliveryAttempt(
            job=job, provider=provider, started_at=started, duration_ms=ms, outcome="accepted"
        )
        for ms in durations
    )


@pytest.fixture
def slow_and_fast(providers) -> tuple[Provider, Provider]:
    slow, fast = providers["mailgun"], providers["smtp"]
    calls(slow, DURATIONS, ago=dt.timedelta(minutes=1))
    calls(slow, [5000], ago=dt.timedelta(minutes=10))  # outside the 5-minute window
    calls(fast, [5] * 30, ago=dt.timedelta(minutes=1))
    return slow, fast


def test_latency_percentiles_per_provider_over_the_last_minutes(slow_and_fast):
    slow, fast = slow_and_fast
    latency = selectors.latencies(minutes=5)
    assert latency[slow.pk] == pytest.approx(selectors.Latency(100.0, 190.0, 21))
    assert latency[fast.pk] == selectors.Latency(5.0, 5.0, 30)


def test_the_python_percentiles_agree_with_postgresql_s():
    assert selectors._percentiles(DURATIONS) == selectors.Latency(100.0, 190.0, 21)
    assert selectors._percentiles([7]) == selectors.Latency(7, 7, 1)


def test_each_providers_share_of_calls_per_minute(slow_and_fast):
    slow, fast = slow_and_fast
    shares = selectors.traffic_shares(selectors.attempts_per_minute(minutes=10), last=3)
    minute_with_calls = [i for i, share in enumerate(shares[slow.pk]) if share is not None]
    [i] = minute_with_calls
    assert shares[slow.pk][i] == pytest.approx(21 / 51)
    assert shares[fast.pk][i] == pytest.approx(30 / 51)


def test_the_health_page_and_its_json_show_latency_calls_in_flight_and_shares(
    admin_client, slow_and_fast
):
    slow, _ = slow_and_fast
    provider_state.reserve(slow, at=provider_state.now())  # one call in flight now

    page = admin_client.get(reverse("ops:provider-health")).content.decode()
    assert "median 100 ms · 95th percentile 190 ms (21 calls)" in page
    assert "Share of calls, minute by minute" in page and "41 %" in page and "59 %" in page

    data = admin_client.get(reverse("ops:provider-health-json")).json()
    row = next(p for p in data["providers"] if p["name"] == slow.name)
    assert row["latency_ms"] == {"p50": 100, "p95": 190, "calls": 21}
    assert row["in_flight"] == 1
    assert pytest.approx(21 / 51) in row["share_per_minute"]


def test_healthz_and_gpmas_status_show_latency_and_calls_in_flight(admin_client, slow_and_fast):
    slow, _ = slow_and_fast
    provider_state.reserve(slow, at=provider_state.now())

    report = json.loads(admin_client.get("/healthz").content)
    row = next(p for p in report["providers"] if p["name"] == slow.name)
    assert (row["latency_ms"], row["in_flight"]) == ({"p50": 100, "p95": 190}, 1)

    out = StringIO()
    call_command("gpmas", "status", stdout=out)
    [line] = [line for line in out.getvalue().splitlines() if line.startswith(slow.name)]
    assert "100 / 190" in line
    assert "p50/p95 ms (5 min)" in out.getvalue()
