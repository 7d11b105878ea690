"""The unsubscribe page in Chromium at 390 px and 1280 px: the GET asks, the button unsubscribes,
and a long address wraps instead of scrolling the page sideways."""

import pytest

from delivery.models import Unsubscribe
from invitations.models import Invitation
from tests.browser import test_main_path as main_path
from tests.browser.test_guest_page_and_forms import LONG_ADDRESS, no_sideways_scroll
from tests.events.factories import make_event

chromium = main_path.chromium
pytestmark = [
    pytest.mark.skipif(not main_path.CHROMIUM.exists(), reason="needs Debian's chromium"),
    pytest.mark.django_db(transaction=True),
]


@pytest.mark.parametrize("width", [390, 1280])
def test_the_unsubscribe_page_asks_then_unsubscribes_and_fits(
    chromium, live_server, organizer, width
):
    event = make_event(organizer, guests=[LONG_ADDRESS])
    link = Invitation.objects.get(event=event).email_job.headers["List-Unsubscribe"]
    path = link.strip("<>").split("8000", 1)[1]
    context = chromium.new_context(viewport={"width": width, "height": 800})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(live_server.url + path)
    page.get_by_role("heading", name="Unsubscribe from Olivia Park?").wait_for()
    no_sideways_scroll(page)
    assert not Unsubscribe.objects.exists()

    page.get_by_role("button", name="Unsubscribe").click()
    page.get_by_role("heading", name="You are unsubscribed").wait_for()
    no_sideways_scroll(page)
    assert Unsubscribe.objects.get().address == LONG_ADDRESS.lower()
    context.close()
