"""The organizer's pages on a phone and a laptop (issue #17, items 2, 4 and 8), in headless
Chromium: no sideways scroll at 390 px or 1280 px, every guest's actions within reach, revoke
asks first and can be undone, and the guest list updates without a reload."""

import pytest
from django.utils import timezone

from delivery.models import EmailJob
from invitations.models import Invitation
from invitations.services import invitation_accept
from tests.browser.test_main_path import CHROMIUM, chromium, log_in  # noqa: F401
from tests.events.factories import make_event, tokens

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium"),
    pytest.mark.django_db(transaction=True),
]
LONG = "a-rather-long-guest-address-for-a-phone@example-organisation.example"
WIDTHS = [390, 1280]


def no_sideways_scroll(page, width: int) -> None:
    scroll = page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, f"{page.url} is {scroll} px wide in a {width} px viewport"


def watch_event_on_a_phone(chromium, base_url: str, event_id: int):  # noqa: F811
    """Olivia's event page at 390 px, polled live; ``window.notReloaded`` would be lost if the
    page reloaded, so a test can tell a live update from a reload."""
    page = chromium.new_page(viewport={"width": 390, "height": 800})
    page.set_default_timeout(15_000)
    log_in(page, base_url, "olivia", "pw-olivia-1")
    page.goto(f"{base_url}/events/{event_id}/")
    page.evaluate("window.notReloaded = true")
    return page


def within_reach(locator, width: int) -> None:
    box = locator.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, box


@pytest.fixture
def party(organizer):
    return make_event(
        organizer,
        title="Garden party with a title long enough to wrap on a phone",
        guests=["ann@example.com", LONG, "bob@example.com"],
        capacity=10,
    )


@pytest.mark.parametrize("width", WIDTHS)
def test_pages_fit_and_revoke_asks_first_then_undoes(chromium, live_server, party, width):  # noqa: F811
    page = chromium.new_page(viewport={"width": width, "height": 800})
    page.set_default_timeout(15_000)
    log_in(page, live_server.url, "olivia", "pw-olivia-1")
    page.get_by_role("heading", name="Your events").wait_for()
    no_sideways_scroll(page, width)

    page.get_by_role("link", name=party.title).click()
    page.get_by_role("heading", name=party.title).wait_for()
    no_sideways_scroll(page, width)
    revoke = page.get_by_role("link", name=f"Revoke the invitation of {LONG}")
    within_reach(revoke, width)
    within_reach(page.get_by_role("link", name=f"Resend the invitation to {LONG}"), width)

    revoke.click()
    page.get_by_text("link will stop working").wait_for()
    no_sideways_scroll(page, width)
    assert Invitation.objects.get(email=LONG).revoked_at is None  # only asked so far
    page.get_by_role("button", name="Revoke the invitation").click()
    page.get_by_text(f"The invitation of {LONG} was revoked").wait_for()
    assert Invitation.objects.get(email=LONG).revoked_at is not None
    no_sideways_scroll(page, width)

    name = f"Guest {LONG.split('@')[0]}"  # as the factory names guests
    undo = page.get_by_role("button", name=f"Undo revoke of {name}")
    within_reach(undo, width)
    undo.click()
    page.get_by_text("is back, as it was before the revoke").wait_for()
    assert Invitation.objects.get(email=LONG).revoked_at is None
    page.close()


def test_the_guest_list_updates_without_a_reload(chromium, live_server, party, settings):  # noqa: F811
    settings.GPMAS_LIVE_POLL_MS = 300
    page = watch_event_on_a_phone(chromium, live_server.url, party.pk)
    assert page.locator("#count-accepted").inner_text() == "0"

    invitation_accept(token=tokens(party)["ann@example.com"], party_size=1)
    ann, bob = (Invitation.objects.get(email=f"{name}@example.com") for name in ("ann", "bob"))
    EmailJob.objects.filter(pk=bob.email_job_id).update(status="sent", finished_at=timezone.now())
    page.wait_for_function("document.getElementById('count-accepted').textContent === '1'")
    page.locator(f"#guest-{ann.pk}").get_by_text("Accepted").wait_for()
    page.locator(f"#guest-{bob.pk}").get_by_text("sent", exact=True).wait_for()
    assert page.evaluate("window.notReloaded") is True
    no_sideways_scroll(page, 390)
    page.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_every_organizer_page_fits(chromium, live_server, party, width):  # noqa: F811
    page = chromium.new_page(viewport={"width": width, "height": 800})
    page.set_default_timeout(15_000)
    log_in(page, live_server.url, "olivia", "pw-olivia-1")
    page.get_by_role("heading", name="Your events").wait_for()
    guest = Invitation.objects.get(email=LONG)
    event_pages = ["edit/", "invite/", "cancel/", "delete/", f"invitations/{guest.pk}/resend/"]
    for path in ["/events/new/", *[f"/events/{party.pk}/{tail}" for tail in event_pages]]:
        page.goto(live_server.url + path)
        page.locator("h1").wait_for()
        no_sideways_scroll(page, width)
        within_reach(page.get_by_role("button").last, width)
    page.goto(f"{live_server.url}/events/{party.pk}/invite/")
    page.get_by_label("Guests").fill(f"Someone With A Long Name <x-{LONG}>\nnot an address")
    page.get_by_role("button", name="Preview").click()
    page.locator("#preview-new").wait_for()
    no_sideways_scroll(page, width)
    page.close()
