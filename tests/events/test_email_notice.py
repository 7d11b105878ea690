"""The banner on organizer pages (issue #17, item 1): organizers hear only what affects their own
emails, in plain words; staff keep the system's detail."""

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from delivery import provider_state
from delivery.models import EmailJob, Provider
from gpmas.notices import DELAYED, PAUSED
from reliability import halt
from tests.events.factories import make_event

pytestmark = pytest.mark.django_db


def banner(client) -> str:
    page = client.get(reverse("dashboard")).content.decode()
    if 'class="banner"' not in page:
        return ""
    return page.split('class="banner"', 1)[1].split("</div>", 1)[0]


def age_jobs(event, seconds: float) -> None:
    then = timezone.now() - dt.timedelta(seconds=seconds)
    EmailJob.objects.filter(topic=event.topic).update(created_at=then, next_attempt_at=then)


def test_a_provider_outage_absorbed_by_failover_tells_organizers_nothing(
    organizer_client, admin_client, providers
):
    provider_state.record_outcome(providers["sendgrid"], "provider_error", at=provider_state.now())
    assert banner(organizer_client) == ""
    staff = banner(admin_client)
    assert "sandbox-sendgrid" in staff and "degraded" in staff


def test_a_halt_is_one_plain_sentence_without_the_operators_reason(
    organizer_client, admin_client, providers
):
    halt.system_halt(reason="provider incident 42", source="test")
    text = banner(organizer_client)
    assert PAUSED in text
    assert "incident" not in text and "halted" not in text
    assert text.count("paused") == 1
    staff = banner(admin_client)
    assert "provider incident 42" in staff
    assert staff.count("halted") == 1  # said once, with the reason


def test_delayed_only_when_the_organizers_own_emails_wait_too_long(
    organizer_client, organizer, outsider, providers, settings
):
    settings.GPMAS_EMAIL_DELAYED_AFTER_SECONDS = 300
    mine = make_event(organizer, guests=2)
    theirs = make_event(outsider, guests=2)
    age_jobs(mine, 60)  # waiting, but not long
    age_jobs(theirs, 3600)  # someone else's emails are late: not this organizer's business
    assert banner(organizer_client) == ""
    age_jobs(mine, 301)
    assert DELAYED in banner(organizer_client)
    EmailJob.objects.filter(topic=mine.topic).update(status="sent", finished_at=timezone.now())
    assert banner(organizer_client) == ""


def test_emails_scheduled_for_later_are_not_delayed(organizer_client, organizer, providers):
    event = make_event(organizer, guests=1)
    later = timezone.now() + dt.timedelta(days=20)
    EmailJob.objects.filter(topic=event.topic).update(
        created_at=timezone.now() - dt.timedelta(days=1), not_before=later, next_attempt_at=later
    )
    assert banner(organizer_client) == ""


def test_every_provider_down_shows_organizers_delay_only_once_their_emails_wait(
    organizer_client, organizer, providers
):
    for provider in Provider.objects.all():
        provider_state.record_outcome(provider, "provider_error", at=provider_state.now())
    event = make_event(organizer, guests=1)
    assert banner(organizer_client) == ""
    age_jobs(event, 3600)
    text = banner(organizer_client)
    assert DELAYED in text and "sandbox" not in text and "open" not in text
