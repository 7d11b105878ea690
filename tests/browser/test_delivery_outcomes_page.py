"""The guest list with what happened after sending (issue #16, item 7), in headless Chromium at
390 px and 1280 px: each state and its plain-words reason fit without sideways scroll, the
filter picks the bounced guests, and a bounce reported later reaches the page without a reload."""

import pytest
from django.utils import timezone

from delivery import suppression
from delivery.delivery_state import record_delivery_state
from delivery.models import EmailJob, Suppression
from invitations.models import Invitation
from tests.browser.test_main_path import CHROMIUM, chromium, log_in  # noqa: F401
from tests.browser.test_organizer_pages import (
    LONG,
    WIDTHS,
    no_sideways_scroll,
    watch_event_on_a_phone,
)
from tests.events.factories import make_event

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium"),
    pytest.mark.django_db(transaction=True),
]
State = EmailJob.DeliveryState
STATES = {
    LONG: State.BOUNCED_HARD,
    "ann@example.com": State.DELIVERED,
    "bob@example.com": State.COMPLAINED,
    "cat@example.com": State.DEFERRED,
}


@pytest.fixture
def party(organizer):
    suppression.suppress("old@example.com", Suppression.Reason.HARD_BOUNCE)
    event = make_event(organizer, title="Garden party", guests=[*STATES, "old@example.com"])
    for address, state in STATES.items():
        job = Invitation.objects.get(email=address).email_job
        EmailJob.objects.filter(pk=job.pk).update(status="sent", finished_at=timezone.now())
        record_delivery_state(job.pk, state, at=timezone.now())
    return event


def row(page, address: str):
    return page.locator(f"#guest-{Invitation.objects.get(email=address).pk}")


@pytest.mark.parametrize("width", WIDTHS)
def test_states_and_reasons_fit_and_the_filter_picks_them(chromium, live_server, party, width):  # noqa: F811
    page = chromium.new_page(viewport={"width": width, "height": 800})
    page.set_default_timeout(15_000)
    log_in(page, live_server.url, "olivia", "pw-olivia-1")
    page.goto(f"{live_server.url}/events/{party.pk}/")

    row(page, LONG).get_by_text("the address does not exist").wait_for()
    row(page, "bob@example.com").get_by_text("the guest marked it as spam").wait_for()
    row(page, "cat@example.com").get_by_text("the receiving server is deferring it").wait_for()
    row(page, "old@example.com").get_by_text("not sent: this address bounced before").wait_for()
    row(page, "ann@example.com").get_by_text("delivered", exact=True).wait_for()
    assert page.locator("#count-bounced").inner_text() == "1"
    assert page.locator("#count-complained").inner_text() == "1"
    no_sideways_scroll(page, width)

    page.get_by_label("Delivery", exact=True).select_option("bounced")
    page.get_by_role("button", name="Filter").click()
    page.get_by_text("1 guest matching the filter").wait_for()
    row(page, LONG).wait_for()
    no_sideways_scroll(page, width)
    page.close()


def test_a_bounce_reported_later_shows_without_a_reload(chromium, live_server, party, settings):  # noqa: F811
    settings.GPMAS_LIVE_POLL_MS = 300
    page = watch_event_on_a_phone(chromium, live_server.url, party.pk)

    ann = Invitation.objects.get(email="ann@example.com")
    record_delivery_state(ann.email_job_id, State.BOUNCED_HARD, at=timezone.now())
    row(page, "ann@example.com").get_by_text("the address does not exist").wait_for()
    page.wait_for_function("document.getElementById('count-bounced').textContent === '2'")
    assert page.evaluate("window.notReloaded") is True
    no_sideways_scroll(page, 390)
    page.close()
