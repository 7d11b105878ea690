"""Item 11: the health page and `gpmas status` explain themselves: a legend, times in the
operators' zone with the zone named, and an early warning for a provider failing while closed."""

import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse

from delivery import provider_state, selectors
from delivery.models import DeliveryAttempt
from gpmas import system
from tests.test_foundation_settings import run_django

pytestmark = pytest.mark.django_db
Outcome = DeliveryAttempt.Outcome
PAGE = reverse("ops:provider-health")


def fail(provider, times: int, outcome: str = Outcome.TRANSIENT) -> None:
    for _ in range(times):
        provider_state.record_outcome(provider, outcome, at=provider_state.now(), error="503")


def health_of(provider) -> selectors.ProviderHealth:
    return next(h for h in selectors.provider_health() if h.provider.pk == provider.pk)


def status_output() -> str:
    out = StringIO()
    call_command("gpmas", "status", stdout=out)
    return out.getvalue()


def test_four_503s_in_a_row_are_an_early_warning_while_the_circuit_stays_closed(providers):
    sendgrid = providers["sendgrid"]
    fail(sendgrid, 4)

    health = health_of(sendgrid)
    assert health.view.circuit == "closed" and health.available  # still sending
    assert health.availability.failing
    assert health.state == "failing (4 in a row, still closed)"
    staff_view = system.system_state(staff=True)
    assert staff_view.code == system.DEGRADED
    assert "sandbox-sendgrid failing" in staff_view.message
    assert system.system_state().is_normal  # organizers are not alarmed by a closed circuit


def test_one_failure_is_not_yet_failing(providers):
    fail(providers["sendgrid"], 1)
    assert not health_of(providers["sendgrid"]).availability.failing
    assert health_of(providers["sendgrid"]).state == "closed"
    assert system.system_state(staff=True).is_normal


def test_the_health_page_warns_and_carries_a_legend(admin_client, providers):
    fail(providers["ses"], 3)

    html = admin_client.get(PAGE).content.decode()

    assert "Early warning:" in html and "sandbox-ses" in html
    assert 'class="state-failing">failing (3 in a row, still closed)' in html
    for term in ("closed", "failing", "open", "half-open", "penalty"):
        assert f"<dt>{term}</dt>" in html
    assert "opens at 100" in html
    assert admin_client.get(reverse("ops:provider-health-json")).json()["providers"]


def test_a_healthy_page_has_no_early_warning(admin_client, providers):
    assert "Early warning" not in admin_client.get(PAGE).content.decode()


def test_gpmas_status_warns_and_explains_the_states(providers):
    fail(providers["mailgun"], 2)

    out = status_output()

    assert "system: degraded - Some providers are failing, still sending" in out
    assert "failing (2 in a row, still closed)" in out
    assert re.search(r"^  half-open +trying again", out, re.M)
    assert re.search(r"^  penalty +recent failures", out, re.M)
    assert re.search(r"^at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(UTC\)$", out, re.M)


def test_times_are_in_the_operators_zone_with_its_name(admin_client, providers, settings):
    settings.GPMAS_TIME_ZONE = "America/New_York"
    fail(providers["smtp"], 1, Outcome.PROVIDER_ERROR)  # opens the circuit

    state = health_of(providers["smtp"]).state
    assert re.fullmatch(r"open until \d\d:\d\d:\d\d E[SD]T", state), state
    html = admin_client.get(PAGE).content.decode()
    assert "times in America/New_York" in html
    assert re.search(r"Generated \d\d:\d\d:\d\d E[SD]T", html)
    assert re.search(r"^at .* E[SD]T \(America/New_York\)$", status_output(), re.M)


def test_a_bad_time_zone_stops_start_up_naming_the_variable():
    result = run_django({"DEBUG": "1", "GPMAS_TIME_ZONE": "Mars/Olympus"}, "check")
    assert result.returncode == 1
    assert "GPMAS_TIME_ZONE must be an IANA time zone" in result.stderr
