"""Issue #16 item 7, for operators: the provider health page (and its JSON) and `gpmas status`
show each provider's bounce and complaint rates over 24 h, per message it took, flagged over
the SES review thresholds; `/healthz` says nothing of them."""

import datetime as dt
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from delivery import reputation
from delivery.models import DeliveryAttempt, DeliveryEvent, EmailJob, Provider
from tests.delivery.jobs import new_job

pytestmark = pytest.mark.django_db
State = EmailJob.DeliveryState
Outcome = DeliveryAttempt.Outcome


def sent(provider, n: int, *, outcome=Outcome.ACCEPTED, hours_ago: float = 1) -> None:
    job = new_job(to_email=f"bulk-{provider.name}@example.com")
    started = timezone.now() - dt.timedelta(hours=hours_ago)
    DeliveryAttempt.objects.bulk_create(
        DeliveryAttempt(job=job, provider=provider, started_at=started, outcome=outcome)
        for _ in range(n)
    )


def event(provider, outcome: str, *, job=None, hours_ago: float = 0) -> EmailJob:
    job = job or new_job(to_email=f"{outcome}-{DeliveryEvent.objects.count()}@example.com")
    EmailJob.objects.filter(pk=job.pk).update(provider=provider)
    row = DeliveryEvent.objects.create(
        provider_kind=provider.kind,
        event_id=f"e{DeliveryEvent.objects.count()}",
        kind="bounced",
        outcome=outcome,
        job=job,
    )
    DeliveryEvent.objects.filter(pk=row.pk).update(
        received_at=timezone.now() - dt.timedelta(hours=hours_ago)
    )
    return job


@pytest.fixture
def bad_and_good():
    bad = Provider.objects.create(name="bad", kind="console")
    good = Provider.objects.create(name="good", kind="console")
    sent(bad, 40)
    sent(bad, 5, outcome=Outcome.TRANSIENT)  # not taken: not in the denominator
    sent(bad, 500, hours_ago=30)  # before the window
    bounced = [event(bad, State.BOUNCED_HARD) for _ in range(3)]
    event(bad, State.BOUNCED_HARD, job=bounced[0])  # the same message again: one bounce
    event(bad, State.BOUNCED_SOFT)  # soft: not in SES's bounce rate
    event(bad, State.BOUNCED_HARD, hours_ago=25)  # before the window
    event(bad, State.COMPLAINED)
    sent(good, 2000)
    event(good, State.BOUNCED_HARD)
    event(good, State.COMPLAINED)
    return bad, good


def test_rates_per_message_in_24_hours_in_two_queries(bad_and_good, django_assert_num_queries):
    bad, good = bad_and_good
    with django_assert_num_queries(2):
        rates = reputation.reputations()

    assert (rates[bad.pk].sent, rates[bad.pk].bounces, rates[bad.pk].complaints) == (40, 3, 1)
    assert rates[bad.pk].bounce_rate == pytest.approx(3 / 40)
    assert rates[bad.pk].complaint_rate == pytest.approx(1 / 40)
    assert [w.split(" over ")[0] for w in rates[bad.pk].warnings()] == [
        "bounce rate",
        "complaint rate",
        "complaint rate",
    ]
    # 1 in 2000 is 0.05 %: under SES's 0.1 % complaint threshold and its 5 % bounce one.
    assert (rates[good.pk].sent, rates[good.pk].bounces, rates[good.pk].complaints) == (2000, 1, 1)
    assert rates[good.pk].warnings() == []
    assert reputation.Reputation().bounce_text() == "0, none sent"


def test_the_health_page_and_its_json_show_and_flag_them(admin_client, bad_and_good):
    bad, good = bad_and_good
    page = admin_client.get(reverse("ops:provider-health")).content.decode()
    assert "3 of 40 sent (7.50 %)" in page and "1 of 40 sent (2.50 %)" in page
    assert "1 of 2000 sent (0.05 %)" in page
    assert page.count("over SES&#x27;s review threshold") == 2
    assert "over Gmail and Yahoo&#x27;s spam limit (0.3 %)" in page

    body = admin_client.get(reverse("ops:provider-health-json")).json()
    rates = {row["name"]: row["last_24h"] for row in body["providers"]}
    assert rates["bad"]["bounces"] == 3 and rates["bad"]["sent"] == 40
    assert len(rates["bad"]["warnings"]) == 3 and rates["good"]["warnings"] == []


def test_gpmas_status_shows_and_flags_them(bad_and_good):
    out = StringIO()
    call_command("gpmas", "status", stdout=out)
    lines = {line.split()[0]: line for line in out.getvalue().splitlines() if line.strip()}
    assert "3 of 40 sent (7.50 %)" in lines["bad"] and "over SES's review threshold" in lines["bad"]
    assert "1 of 2000 sent (0.05 %)" in lines["good"]
    assert "5 % bounce rate or a 0.1 % complaint rate" in out.getvalue()


def test_healthz_stays_about_sending(client, bad_and_good):
    assert "bounce" not in client.get("/healthz").content.decode().lower()
