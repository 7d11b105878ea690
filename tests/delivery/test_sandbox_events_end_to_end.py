"""The delivery-event loop end to end with real processes (#16, "Proof"): a web process takes
the webhooks, a Celery worker sends, the sandbox (in threads of this process) plays the
providers, both sides configured as ``./dev up`` configures them (sandbox.webhook_keys). Three
guests are invited: one is delivered, one bounces, one complains; once their events are in (the
jobs' delivery states, the suppression list, the organizer's guest list), a resend to all three
makes exactly one provider call, the other two ending ``suppressed``."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from delivery.models import EmailJob, Provider, Suppression
from invitations.models import Invitation
from invitations.services import invitation_resend
from sandbox.webhook_keys import site_environment
from tests.delivery.sandbox_site import KEYS, SECRET
from tests.delivery.webhooks.test_guest_list_outcomes import rows
from tests.events.factories import invite, make_event
from tests.processes import CeleryWorker, WebServer, wait_for

pytestmark = pytest.mark.django_db(transaction=True)
State = EmailJob.DeliveryState
GUESTS = {
    "guest@sandbox.test": State.DELIVERED,
    "bounce@sandbox.test": State.BOUNCED_HARD,
    "complaint@sandbox.test": State.COMPLAINED,
}


@pytest.fixture
def stack(tmp_path, providers, clean_sandbox):
    """A web process trusting the sandbox's keys and a worker; the sandbox posting to the web
    process. SMTP is off: a plain SMTP relay posts no events."""
    Provider.objects.filter(kind="smtp").update(enabled=False)
    site = site_environment(KEYS, secret=SECRET, sandbox_http_url=clean_sandbox.http_url)
    web = WebServer(tmp_path, **site)
    worker = CeleryWorker("events", tmp_path, concurrency=2)
    try:
        with ThreadPoolExecutor(2) as pool:  # each takes seconds to import Django and the SDKs
            list(pool.map(lambda process: process.start(), [web, worker]))
        clean_sandbox.send_events_to(web.url, secret=SECRET, keys=KEYS, delay=0.2)
        yield clean_sandbox
    finally:
        clean_sandbox.stop_events()
        worker.kill()
        web.stop()


def states(invitations) -> dict[str, str]:
    jobs = EmailJob.objects.filter(pk__in=[i.email_job_id for i in invitations])
    return dict(jobs.values_list("to_email", "delivery_state"))


def calls(sandbox) -> int:
    return sum(counts["calls"] for counts in sandbox.inbox.stats().values())


def guest_list(client, event) -> dict[str, str]:
    """Each guest's invitation-email cell on the organizer's event page, as text."""
    return rows(client.get(f"/events/{event.pk}/").content.decode())


def test_a_bounce_and_a_complaint_suppress_the_next_invitation(stack, organizer, organizer_client):
    event = make_event(organizer)
    invitations = invite(event, *GUESTS)

    wait_for(lambda: states(invitations) == GUESTS, timeout=25, message="the three events")
    suppressed = dict(Suppression.objects.values_list("address", "reason"))
    assert suppressed == {
        "bounce@sandbox.test": "hard_bounce",
        "complaint@sandbox.test": "complaint",
    }
    assert all(r.status == 200 for r in stack.webhooks.recent())  # nothing refused
    shown = guest_list(organizer_client, event)
    assert shown["guest@sandbox.test"] == "delivered"
    assert shown["bounce@sandbox.test"].startswith("bounced")
    assert "the address does not exist" in shown["bounce@sandbox.test"]
    assert shown["complaint@sandbox.test"].startswith("marked as spam")

    before = calls(stack)
    for invitation in Invitation.objects.filter(pk__in=[i.pk for i in invitations]):
        invitation_resend(invitation=invitation)

    resent = Invitation.objects.filter(event=event, revoked_at__isnull=True)
    expected = {
        "guest@sandbox.test": "sent",
        "bounce@sandbox.test": "suppressed",
        "complaint@sandbox.test": "suppressed",
    }

    def resent_statuses() -> dict[str, str]:
        jobs = EmailJob.objects.filter(pk__in=resent.values("email_job_id"))
        return dict(jobs.values_list("to_email", "status"))

    wait_for(lambda: resent_statuses() == expected, timeout=20, message="the resent jobs")
    assert calls(stack) - before == 1
    [again] = stack.inbox.messages()[-1:]
    assert again.to == ["guest@sandbox.test"]
    shown = guest_list(organizer_client, event)
    assert shown["bounce@sandbox.test"].startswith("suppressed")
    assert "this address bounced before" in shown["bounce@sandbox.test"]
    assert "marked an earlier email as spam" in shown["complaint@sandbox.test"]
