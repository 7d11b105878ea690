"""The guest page and the organizer's forms in Chromium at a phone's 390 px and a laptop's
1280 px: no sideways scroll, Accept and Decline side by side on a phone, long addresses wrap."""

from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from events.models import OrganizerProfile
from tests.browser import test_main_path as main_path
from tests.events.factories import make_event, tokens

chromium = main_path.chromium  # the fixture: headless Chromium through Playwright
log_in = main_path.log_in
pytestmark = [
    pytest.mark.skipif(not main_path.CHROMIUM.exists(), reason="needs Debian's chromium"),
    pytest.mark.django_db(transaction=True),
]
WIDTHS = [390, 1280]
LONG_ADDRESS = "a-very-long-mailbox-name-for-the-host-of-the-party@" + "sub." * 6 + "example.com"


def no_sideways_scroll(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"{page.url} scrolls sideways: {width}px"


def long_named_event():
    host = get_user_model().objects.create_user("hostess", LONG_ADDRESS, "pw-hostess-1")
    OrganizerProfile.objects.create(user=host, display_name="Olivia Park")
    event = make_event(
        host,
        guests=1,
        plus_ones_allowed=2,
        location="Gemeinschaftsgartenvereinshauptgebäudeeingangstür, Hauptstraße 1, 10115 Berlin",
    )
    return event, tokens(event)["guest0@example.com"]


@pytest.mark.parametrize("width", WIDTHS)
def test_the_guest_page_fits_and_keeps_the_answer_buttons_together(chromium, live_server, width):
    event, token = long_named_event()
    context = chromium.new_context(viewport={"width": width, "height": 800})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{live_server.url}/i/{token}/")
    page.get_by_role("heading", name=event.title).wait_for()
    no_sideways_scroll(page)
    assert page.get_by_role("link", name="GPMAS").count() == 0  # no door to the login
    accept = page.get_by_role("button", name="Accept").bounding_box()
    decline = page.get_by_role("button", name="Decline").bounding_box()
    assert abs(accept["y"] - decline["y"]) < 2, "Accept and Decline are not side by side"
    assert accept["x"] + accept["width"] <= decline["x"]

    page.get_by_role("button", name="Accept").click()
    page.get_by_role("heading", name="Add to your calendar").wait_for()
    no_sideways_scroll(page)
    with page.expect_download() as download:
        page.get_by_role("link", name="Calendar file (.ics)").click()
    assert download.value.suggested_filename == "summer-party.ics"
    assert "BEGIN:VEVENT" in Path(download.value.path()).read_text()
    context.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_the_organizer_forms_fit(chromium, live_server, organizer, width):
    event = make_event(organizer)
    context = chromium.new_context(viewport={"width": width, "height": 800})
    page = context.new_page()
    page.set_default_timeout(15_000)
    log_in(page, live_server.url, "olivia", "pw-olivia-1")
    for path in (
        "/profile/",
        "/events/new/",
        f"/events/{event.pk}/edit/",
        f"/events/{event.pk}/invite/",
    ):
        page.goto(live_server.url + path)
        page.locator("main form").first.wait_for()
        no_sideways_scroll(page)
    page.get_by_label("Guests").fill(
        f"Ann Lee <ann@example.com>\nBob <{LONG_ADDRESS}\n{'Wolfeschlegelsteinhausen' * 4}@x"
    )
    page.get_by_role("button", name="Preview").click()
    page.get_by_role("table", name="Will be invited (1): how each line was read").wait_for()
    assert "Missing closing >" in page.locator("table.line-errors").inner_text()
    no_sideways_scroll(page)
    context.close()


def test_the_zone_picker_defaults_to_the_browsers_zone_and_searches(
    chromium, live_server, organizer
):
    context = chromium.new_context(timezone_id="America/Chicago")
    page = context.new_page()
    page.set_default_timeout(15_000)
    log_in(page, live_server.url, "olivia", "pw-olivia-1")
    page.goto(f"{live_server.url}/events/new/")
    zone = page.get_by_label("Time zone")
    assert zone.input_value() == "America/Chicago"
    page.get_by_label("Search the zone list").fill("tokyo")
    assert zone.input_value() == "Asia/Tokyo"
    page.get_by_role("button", name="Create event").click()  # nothing else filled in
    summary = page.get_by_role("alert")
    assert "Title: This field is required." in summary.inner_text()
    assert zone.input_value() == "Asia/Tokyo"  # the choice survives the error
    context.close()
