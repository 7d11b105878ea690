"""Where organizers see the providers' events (issue #16, item 7): each invitation in the guest
list shows what happened after sending, with a reason in plain words, filters on it, and the
event page (and its live partial) counts it. The events arrive through the signed webhook."""

from __future__ import annotations

import re

import pytest
from django.utils import timezone

from delivery import progress, suppression
from delivery.models import EmailJob, Suppression
from delivery.unsubscribe import REASON as UNSUBSCRIBE_NOTE
from invitations.models import Invitation
from tests.delivery.webhooks.posting import post_sendgrid, sendgrid_event
from tests.events.factories import make_event

pytestmark = pytest.mark.django_db

# guest -> the SendGrid events its invitation gets, in the order they arrive
EVENTS = {
    "ok@example.com": [("delivered", {})],
    "slow@example.com": [("deferred", {})],
    "gone@example.com": [("delivered", {}), ("bounce", {"type": "bounce"})],
    "full@example.com": [("bounce", {"type": "blocked"})],
    "angry@example.com": [("spamreport", {}), ("delivered", {})],
    "bye@example.com": [("unsubscribe", {})],
}
EXPECTED = {
    "ok@example.com": ("delivered", ""),
    "slow@example.com": ("delayed", "the receiving server is deferring it"),
    "gone@example.com": ("bounced", "the address does not exist"),
    "full@example.com": ("bounced", "turned it away for now"),
    "angry@example.com": ("marked as spam", "the guest marked it as spam"),
    "bye@example.com": ("unsubscribed", "the guest unsubscribed from your emails"),
    "old@example.com": ("suppressed", "not sent: this address bounced before"),
    "new@example.com": ("waiting to send", ""),
}
JARGON = re.compile(r"hard|soft|bounced_|sendgrid|mailgun|amazon|ses\b|complain", re.I)


@pytest.fixture
def event(organizer, client):
    suppression.suppress("old@example.com", Suppression.Reason.HARD_BOUNCE)
    event = make_event(organizer, guests=list(EXPECTED))
    jobs = {job.to_email: job for job in EmailJob.objects.filter(kind="invitation")}
    for address, events in EVENTS.items():
        EmailJob.objects.filter(pk=jobs[address].pk).update(
            status="sent", finished_at=timezone.now()
        )
        for kind, fields in events:
            response = post_sendgrid(client, [sendgrid_event(jobs[address], event=kind, **fields)])
            assert response.status_code == 200
    return event


def rows(html: str) -> dict[str, str]:
    """Each guest's invitation-email cell, as text, by address."""
    found = {}
    for row in re.findall(r"<tr id=\"guest-\d+\".*?</tr>", html, re.S):
        address = re.search(r'class="email">([^<]+)<', row).group(1)
        cell = re.search(r'data-label="Invitation email">(.*?)</td>', row, re.S).group(1)
        found[address] = " ".join(re.sub(r"<[^>]+>", " ", cell).split())
    return found


def test_each_guest_shows_what_happened_with_a_plain_reason(event, organizer_client):
    page = organizer_client.get(f"/events/{event.pk}/").content.decode()

    shown = rows(page)
    assert set(shown) == set(EXPECTED)
    for address, (label, reason) in EXPECTED.items():
        assert shown[address].startswith(label), (address, shown[address])
        assert reason in shown[address], (address, shown[address])
        assert not JARGON.search(shown[address]), shown[address]


def test_the_filter_picks_each_outcome(event, organizer_client):
    def listed(choice: str) -> set[str]:
        page = organizer_client.get(f"/events/{event.pk}/", {"delivery": choice})
        return set(rows(page.content.decode()))

    assert listed("bounced") == {"gone@example.com", "full@example.com"}
    assert listed("marked as spam") == {"angry@example.com"}
    assert listed("delayed") == {"slow@example.com"}
    assert listed("delivered") == {"ok@example.com"}
    assert listed("unsubscribed") == {"bye@example.com"}
    assert listed("suppressed") == {"old@example.com"}
    assert listed("sent") == set(EVENTS)  # every email the providers took, whatever came after


def test_the_event_page_and_its_live_partial_count_them(event, organizer_client):
    ids = ",".join(str(pk) for pk in Invitation.objects.values_list("pk", flat=True))
    live = organizer_client.get(f"/events/{event.pk}/live/", {"ids": ids}).json()
    page = organizer_client.get(f"/events/{event.pk}/").content.decode()

    for counts in (live["counts"], page):
        numbers = dict(re.findall(r'<strong id="count-(\w+)">(\d+)</strong>', counts))
        assert numbers["sent"] == "6" and numbers["delivered"] == "1"
        assert (numbers["delayed"], numbers["bounced"]) == ("1", "2")
        assert (numbers["complained"], numbers["unsubscribed"]) == ("1", "1")
        assert numbers["failed"] == "1"
        assert '<span id="count-suppressed">1</span>' in counts
    live_rows = {
        address: text for row in live["rows"].values() for address, text in rows(row).items()
    }
    assert live_rows == rows(page)


def test_why_a_suppressed_email_was_not_sent():
    assert progress.not_sent_because(UNSUBSCRIBE_NOTE) == progress.NOT_SENT_UNSUBSCRIBED
    for reason, words in progress.NOT_SENT_BECAUSE.items():
        assert progress.not_sent_because(f"not sent: the address is suppressed ({reason})") == words
        assert (
            progress.not_sent_because(f"not sent: the address was suppressed ({reason})") == words
        )
    assert progress.not_sent_because("").startswith("not sent")
