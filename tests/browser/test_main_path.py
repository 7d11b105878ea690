"""The main path in a real browser (headless Chromium via Playwright): an organizer logs in,
creates an event, invites two guests; a guest opens the invitation from the sandbox inbox and
accepts; the organizer's page shows the new count."""

from pathlib import Path

import pytest
from django.db import connections

from delivery import dispatch, sending
from delivery.models import EmailJob

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = Path("/tmp/gpmas-event-page.png")

pytestmark = [
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install -y chromium)"
    ),
    pytest.mark.django_db(transaction=True),
]
sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def chromium(monkeypatch):
    # Playwright's sync API keeps an event loop in this thread; the test's own ORM calls are
    # still synchronous, so Django's guard against ORM calls inside a loop does not apply.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()
        # ORM calls made while Playwright runs get their own connection (its greenlet has its
        # own context); close it, or the test database cannot be dropped at the end.
        connections.close_all()


def deliver_all() -> None:
    """One drain, sending in this process, as a worker would."""
    dispatch.outbox_drain(publish=lambda ids: sending.jobs_send(job_ids=ids))


def log_in(page, base_url: str, username: str, password: str) -> None:
    page.goto(f"{base_url}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def create_the_garden_party(page) -> str:
    """From the organizer's page, through the new-event form; the event page's URL."""
    page.get_by_role("link", name="New event").click()
    page.get_by_label("Title").fill("Garden party")
    page.get_by_label("Location").fill("Main Street 1")
    page.get_by_label("Time zone").select_option("Europe/Berlin")
    page.get_by_label("Starts").fill("2031-06-01T18:00")
    page.get_by_label("Ends").fill("2031-06-01T23:00")
    page.get_by_label("Capacity").fill("20")
    page.get_by_label("Plus-ones allowed per guest").fill("1")
    page.get_by_role("button", name="Create event").click()
    page.get_by_role("heading", name="Garden party").wait_for()
    return page.url


def open_the_invitation_from_the_inbox(context, inbox_url: str, email: str):
    """The guest's page, opened (in a new tab) from the link in their invitation in the sandbox
    inbox."""
    inbox = context.new_page()
    inbox.goto(inbox_url + "/")
    inbox.locator("tr", has_text=email).get_by_role("link").click()
    link = inbox.locator("pre a[href*='/i/']")
    with context.expect_page() as opened:
        link.click()
    guest = opened.value
    guest.wait_for_load_state()
    return guest


def test_organizer_invites_and_a_guest_accepts_from_the_inbox(
    chromium, live_server, settings, providers, clean_sandbox, organizer
):
    settings.GPMAS_SITE_URL = live_server.url
    context = chromium.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)

    log_in(page, live_server.url, "olivia", "pw-olivia-1")
    event_url = create_the_garden_party(page)

    page.get_by_role("link", name="Invite guests").click()
    page.get_by_label("Guests").fill("Ann Lee <ann@example.com>\nbob@example.com, Bob")
    page.get_by_role("button", name="Preview").click()
    assert page.locator("#preview-new").inner_text() == "2"
    page.get_by_role("button", name="Send 2 invitations").click()
    page.get_by_text("2 invitations are on their way").wait_for()
    assert page.locator("#count-pending").inner_text() == "2"

    deliver_all()
    assert EmailJob.objects.filter(kind="invitation", status="sent").count() == 2

    guest = open_the_invitation_from_the_inbox(context, clean_sandbox.http_url, "ann@example.com")
    guest.get_by_role("heading", name="Garden party").wait_for()
    assert "18:00–23:00 CEST (Europe/Berlin)" in guest.content()
    guest.get_by_label("How many of you are coming?").select_option("2")
    guest.get_by_role("button", name="Accept").click()
    guest.get_by_text("you're going").wait_for()
    assert "Going" in guest.locator("#current-answer").inner_text()

    page.goto(event_url)
    assert page.locator("#count-accepted").inner_text() == "1"
    assert page.locator("#count-pending").inner_text() == "1"
    assert "2 seats" in page.get_by_role("list", name="Answers").inner_text()
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    context.close()
