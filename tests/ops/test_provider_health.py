import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from delivery import provider_state
from delivery.models import DeliveryAttempt, EmailJob, Provider
from delivery.selectors import MinuteCount, attempts_per_minute
from gpmas.ops_views import PLOT_BOTTOM, PLOT_TOP, chart_geometry
from reliability import redis as project_redis
from tests.delivery.jobs import new_job

pytestmark = pytest.mark.django_db
Outcome = DeliveryAttempt.Outcome
NOW = dt.datetime(2025, 6, 1, 12, 30, 20, tzinfo=dt.UTC)
PAGE, JSON = "ops:provider-health", "ops:provider-health-json"


def attempt(provider: Provider, outcome: str, at: dt.datetime) -> DeliveryAttempt:
    return DeliveryAttempt.objects.create(
        job=new_job(), provider=provider, started_at=at, outcome=outcome
    )


def at(hour: int, minute: int, second: int = 0) -> dt.datetime:
    return NOW.replace(hour=hour, minute=minute, second=second)


def nonzero(series: list[MinuteCount]) -> dict[str, tuple[int, int, int]]:
    return {f"{m.minute:%H:%M}": m[1:] for m in series if any(m[1:])}


def test_attempts_are_counted_per_provider_minute_and_outcome(providers):
    sendgrid, ses = providers["sendgrid"], providers["ses"]
    for outcome in (
        Outcome.ACCEPTED,
        Outcome.ACCEPTED,
        Outcome.TRANSIENT,
        Outcome.RECIPIENT_REJECTED,
    ):
        attempt(sendgrid, outcome, at(12, 30, 15))
    attempt(sendgrid, Outcome.RATE_LIMITED, at(11, 31, 0))  # the window's first minute
    attempt(sendgrid, Outcome.ACCEPTED, at(11, 30, 59))  # a second too old
    attempt(ses, Outcome.UNKNOWN, at(12, 0, 1))
    attempt(ses, Outcome.PROVIDER_ERROR, at(12, 0, 59))

    series = attempts_per_minute(now=NOW)

    assert set(series) == {sendgrid.pk, ses.pk}
    assert nonzero(series[sendgrid.pk]) == {"11:31": (0, 1, 0), "12:30": (2, 1, 1)}
    assert nonzero(series[ses.pk]) == {"12:00": (0, 2, 0)}


def test_every_minute_of_the_window_is_present_with_zeros_filled_in(providers):
    attempt(providers["sendgrid"], Outcome.ACCEPTED, at(12, 10))

    series = attempts_per_minute(now=NOW, provider_ids=[providers["mailgun"].pk])

    for minutes in series.values():
        assert [m.minute for m in minutes] == [
            at(11, 31) + dt.timedelta(minutes=i) for i in range(60)
        ]
    assert nonzero(series[providers["mailgun"].pk]) == {}
    assert sum(m.accepted for m in series[providers["sendgrid"].pk]) == 1


def test_the_whole_window_is_one_query(providers, django_assert_num_queries):
    for kind in ("sendgrid", "ses", "smtp"):
        attempt(providers[kind], Outcome.ACCEPTED, at(12, 1))
        attempt(providers[kind], Outcome.TRANSIENT, at(12, 20))
    with django_assert_num_queries(1):
        attempts_per_minute(now=NOW, provider_ids=[p.pk for p in providers.values()])


def recent_attempts(providers) -> None:
    """sendgrid: 2 accepted, 1 failed, 1 rejected in the last hour, and one older attempt."""
    now = timezone.now()
    sendgrid = providers["sendgrid"]
    for outcome in (
        Outcome.ACCEPTED,
        Outcome.ACCEPTED,
        Outcome.UNKNOWN,
        Outcome.RECIPIENT_REJECTED,
    ):
        attempt(sendgrid, outcome, now - dt.timedelta(minutes=5))
    attempt(sendgrid, Outcome.ACCEPTED, now - dt.timedelta(hours=2))


def test_staff_see_one_chart_per_provider_with_totals_in_its_label(admin_client, providers):
    recent_attempts(providers)
    provider_state.record_outcome(
        providers["ses"], Outcome.PROVIDER_ERROR, at=provider_state.now(), error="<b>403</b>"
    )

    response = admin_client.get(reverse(PAGE))

    assert response.status_code == 200
    html = response.content.decode()
    assert html.count('<svg class="chart"') == 4
    label = 'aria-label="sandbox-{}: {} accepted, {} failed, {} rejected in the last hour"'
    assert label.format("sendgrid", 2, 1, 1) in html
    assert label.format("mailgun", 0, 0, 0) in html
    assert "open until" in html
    assert "&lt;b&gt;403&lt;/b&gt;" in html
    assert '<th scope="col">queued</th>' in html


@pytest.mark.parametrize("name", [PAGE, JSON])
def test_anonymous_users_are_sent_to_the_admin_login(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))


@pytest.mark.parametrize("name", [PAGE, JSON])
def test_users_who_are_not_staff_are_sent_to_the_admin_login(client, outsider, name):
    client.force_login(outsider)
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))


@pytest.mark.parametrize("name", [PAGE, JSON])
def test_post_is_not_allowed(admin_client, name):
    assert admin_client.post(reverse(name)).status_code == 405


def sums(minutes: list[dict]) -> tuple[int, int, int]:
    return tuple(sum(m[series] for m in minutes) for series in ("accepted", "failed", "rejected"))


def test_the_json_has_the_same_numbers_as_the_selector(admin_client, providers):
    recent_attempts(providers)
    new_job()

    data = admin_client.get(reverse(JSON)).json()

    assert set(data) == {"generated_at", "queue", "oldest_due_age_seconds", "providers"}
    assert data["queue"]["queued"] == EmailJob.objects.filter(status="queued").count()
    assert data["oldest_due_age_seconds"] >= 0
    by_name = {p["name"]: p for p in data["providers"]}
    sendgrid = by_name["sandbox-sendgrid"]
    assert sendgrid["id"] == providers["sendgrid"].pk
    assert (sendgrid["kind"], sendgrid["enabled"], sendgrid["state"]) == (
        "sendgrid",
        True,
        "closed",
    )
    assert sendgrid["quota"] == {"used": 0, "limit": None}
    assert sums(sendgrid["minutes"]) == (2, 1, 1)
    assert sums(by_name["sandbox-ses"]["minutes"]) == (0, 0, 0)
    generated_at = dt.datetime.fromisoformat(data["generated_at"])
    expected = attempts_per_minute(now=generated_at)[providers["sendgrid"].pk]
    assert sendgrid["minutes"] == [
        {
            "minute": m.minute.isoformat(),
            "accepted": m.accepted,
            "failed": m.failed,
            "rejected": m.rejected,
        }
        for m in expected
    ]


@pytest.fixture
def redis_down(settings):
    project_redis.client.cache_clear()
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    yield
    project_redis.client.cache_clear()


def test_the_page_still_shows_charts_and_queue_when_redis_is_down(
    admin_client, providers, redis_down
):
    recent_attempts(providers)
    Provider.objects.filter(kind="smtp").update(enabled=False)  # known from the database alone

    page = admin_client.get(reverse(PAGE))
    data = admin_client.get(reverse(JSON)).json()

    assert page.status_code == 200
    html = page.content.decode()
    assert html.count("unknown (Redis unavailable)") == 3
    assert "<strong>disabled</strong>" in html
    assert html.count('<svg class="chart"') == 4
    assert "sandbox-sendgrid: 2 accepted, 1 failed, 1 rejected" in html
    assert '<th scope="col">queued</th>' in html
    sendgrid = next(p for p in data["providers"] if p["name"] == "sandbox-sendgrid")
    assert (sendgrid["state"], sendgrid["penalty"]) == ("unknown (Redis unavailable)", None)
    assert sum(m["failed"] for m in sendgrid["minutes"]) == 1


def minutes_of(*counts: tuple[int, int, int]) -> list[MinuteCount]:
    return [MinuteCount(at(12, i), *c) for i, c in enumerate(counts)]


def test_bar_heights_are_proportional_and_the_tallest_column_is_the_labelled_max():
    chart = chart_geometry("p", minutes_of((10, 0, 0), (5, 4, 1), (0, 0, 0), (2, 0, 0)))
    plot = PLOT_BOTTOM - PLOT_TOP

    assert chart.y_max == 10
    full, mixed, empty, low = chart.columns
    assert [(b.series, b.height) for b in full.bars] == [("accepted", plot)]
    assert [(b.series, b.height) for b in mixed.bars] == [
        ("accepted", plot * 0.5),
        ("failed", plot * 0.4),
        ("rejected", plot * 0.1),
    ]
    assert empty.bars == ()
    assert low.bars[0].height == plot * 0.2
    assert mixed.bars[-1].y == pytest.approx(PLOT_TOP)  # stacked up to the top
    assert [c.x for c in chart.columns] == sorted(c.x for c in chart.columns)
    assert chart.label == "p: 17 accepted, 4 failed, 1 rejected in the last 4 minutes"
    assert [item.text for item in chart.legend] == ["accepted (17)", "failed (4)", "rejected (1)"]


def test_a_single_failure_among_many_accepts_stays_visible():
    chart = chart_geometry("p", minutes_of((5000, 1, 0)))
    assert [b.series for b in chart.columns[0].bars] == ["accepted", "failed"]
    assert chart.columns[0].bars[1].height == 1.0


def test_an_empty_hour_draws_no_bars_and_a_max_of_one():
    chart = chart_geometry("p", minutes_of(*[(0, 0, 0)] * 60))
    assert chart.y_max == 1
    assert all(column.bars == () for column in chart.columns)
    assert chart.label == "p: 0 accepted, 0 failed, 0 rejected in the last hour"
