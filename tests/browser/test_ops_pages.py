"""Item 14 and the operators' pages in a real browser (headless Chromium) at 390 and 1280 px:
no sideways scroll of the page; the sandbox fault form keeps labels beside their boxes, with
units; the HTML preview is not cut off; the admin's email-job list fits 1,280 px; a favicon."""

from __future__ import annotations

import pytest

from delivery import provider_state
from delivery.models import DeliveryAttempt
from tests.browser.test_main_path import CHROMIUM
from tests.delivery.jobs import new_job

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium"),
    pytest.mark.django_db(transaction=True),
]
WIDTHS = (390, 1280)
PASSWORD = "staff-browser-pass-1"  # noqa: S105
# The elements sticking out on the right, to say what makes a page too wide.
WIDEST = """() => [...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > window.innerWidth).slice(0, 8)
  .map(e => `${e.tagName}.${e.className} ${Math.round(e.getBoundingClientRect().right)}`)"""


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_superuser("ops", "ops@example.com", PASSWORD)


def open_page(browser, width: int):
    context = browser.new_context(viewport={"width": width, "height": 900})
    return context.new_page()


def log_in_as_staff(page, base_url: str) -> None:
    page.goto(f"{base_url}/admin/login/")
    page.get_by_label("Username").fill("ops")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base_url}/admin/")


def assert_fits(page, width: int) -> None:
    scroll = page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, (page.url, scroll, page.evaluate(WIDEST))


@pytest.mark.parametrize("width", WIDTHS)
def test_the_health_page_fits_warns_and_explains(chromium, live_server, staff, providers, width):
    for _ in range(3):
        provider_state.record_outcome(
            providers["ses"], DeliveryAttempt.Outcome.TRANSIENT, at=provider_state.now()
        )
    page = open_page(chromium, width)
    log_in_as_staff(page, live_server.url)
    page.goto(f"{live_server.url}/ops/providers/")
    assert page.get_by_text("Early warning:").is_visible()
    assert page.locator(".legend dt", has_text="half-open").is_visible()
    assert_fits(page, width)
    icon = page.locator('link[rel="icon"]').get_attribute("href")
    assert page.request.get(f"{live_server.url}{icon}").headers["content-type"] == "image/svg+xml"


@pytest.mark.parametrize("width", WIDTHS)
def test_the_admin_email_job_list_fits(chromium, live_server, staff, providers, width):
    for n in range(5):
        new_job(
            to_email=f"a.rather.long.guest.address.{n}@an-example-organisation.example.com",
            subject="Invitation: the annual garden party of the neighbourhood association " * 2,
        )
    page = open_page(chromium, width)
    log_in_as_staff(page, live_server.url)
    page.goto(f"{live_server.url}/admin/delivery/emailjob/")
    assert page.locator("#result_list tbody tr").count() == 5
    if width == 1280:  # the admin's own layout at phone width is Django's business
        assert_fits(page, width)
        table = page.locator("#result_list").bounding_box()
        assert table["x"] + table["width"] <= width
    assert page.locator('link[rel="icon"]').count() == 1


LONG_LINK = "https://gpmas.example.com/i/" + "Q7x" * 30 + "/"


def send_html_message(sandbox) -> str:
    """A message whose HTML holds a long link, as an invitation's does."""
    from tests.sandbox.helpers import sendgrid_client, sendgrid_mail

    mail = sendgrid_mail(job="job-42")
    mail.contents[1].content = f"<p>If the button does not work, open {LONG_LINK}</p>"
    sendgrid_client(sandbox).send(mail)
    return sandbox.inbox.messages()[-1].id


@pytest.mark.parametrize("width", WIDTHS)
def test_the_sandbox_inbox_fault_form_has_labels_beside_boxes_and_units(
    chromium, clean_sandbox, width
):
    page = open_page(chromium, width)
    page.goto(clean_sandbox.http_url)
    form = page.locator("form.fault").first
    for label, unit in (("HTTP status", ""), ("Error rate", "%"), ("Latency", "ms")):
        box = form.get_by_label(label, exact=True)
        label_box = form.locator("label", has_text=label).first.bounding_box()
        field = box.bounding_box()
        assert label_box["x"] + label_box["width"] <= field["x"], label  # beside, to the left
        middle = label_box["y"] + label_box["height"] / 2
        assert field["y"] <= middle <= field["y"] + field["height"], label  # on the same line
        if unit:
            unit_box = box.locator("xpath=following-sibling::span[1]")
            assert unit in unit_box.inner_text()
            assert unit_box.bounding_box()["x"] >= field["x"] + field["width"]
    assert_fits(page, width)

    form.get_by_label("Error rate", exact=True).fill("25")
    form.get_by_role("button", name="set").click()
    assert clean_sandbox.faults.all()["sendgrid"].error_rate == 0.25


@pytest.mark.parametrize("width", WIDTHS)
def test_the_sandbox_html_preview_is_not_cut_off(chromium, clean_sandbox, width):
    message_id = send_html_message(clean_sandbox)
    page = open_page(chromium, width)
    page.goto(f"{clean_sandbox.http_url}/messages/{message_id}")
    frame = page.locator(".preview iframe").bounding_box()
    assert frame["x"] >= 0 and frame["x"] + frame["width"] <= width
    assert frame["height"] >= 16 * 16 - 2  # at least 16rem, and 70% of the window
    assert_fits(page, width)
    inside = page.frame_locator(".preview iframe").locator("html")
    assert LONG_LINK[:30] in inside.inner_text()
    wide, room = inside.evaluate("e => [e.scrollWidth, e.clientWidth]")
    assert wide <= room  # the long link wraps: nothing hides past the right edge
