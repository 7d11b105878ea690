"""Deleting an event while real workers send its emails (docs/invariants.md): after the deletion
commits, no queued email of the event reaches a provider; jobs already sending may finish."""

from collections import Counter

import pytest

from delivery.models import EmailJob
from delivery.tasks import drain_now
from events.services import event_delete
from invitations.services import invitation_accept
from sandbox import Fault
from sandbox.faults import PROVIDERS
from tests.events.factories import make_event, tokens
from tests.processes import CeleryWorker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)
Status = EmailJob.Status
GUESTS = 150


@pytest.fixture
def worker(tmp_path, providers):
    running = CeleryWorker("deleter", tmp_path, concurrency=2).start()
    yield running
    running.kill()


def delivered_jobs(sandbox) -> Counter:
    return Counter(int(m.headers["X-GPMAS-Job"]) for m in sandbox.inbox.messages())


def test_after_deletion_commits_no_queued_email_of_the_event_reaches_a_provider(
    worker, clean_sandbox, organizer
):
    for provider in PROVIDERS:  # slow enough that the deletion lands mid-way
        clean_sandbox.faults.set(provider, Fault(latency_ms=40))
    event = make_event(organizer, guests=GUESTS, capacity=3)
    links = tokens(event)
    for i in range(4):  # 3 accepted, 1 waitlisted: they get cancellation notices
        invitation_accept(token=links[f"guest{i}@example.com"], party_size=1)
    topic, notice_topic = event.topic, event.notice_topic
    drain_now()
    wait_for(
        lambda: EmailJob.objects.filter(topic=topic, status=Status.SENT).count() >= 10,
        timeout=60,
        message="the first emails of the event sent",
    )

    deletion = event_delete(event=event)

    at_commit = Counter(EmailJob.objects.filter(topic=topic).values_list("status", flat=True))
    cancelled = set(
        EmailJob.objects.filter(topic=topic, status=Status.CANCELLED).values_list("id", flat=True)
    )
    assert deletion.cancelled_jobs == len(cancelled) > 0  # it did land mid-way
    assert deletion.notices == 4

    def settled() -> bool:
        drain_now()  # the notices were written by the deletion: send them
        waiting = EmailJob.objects.filter(
            status__in=[Status.QUEUED, Status.RETRYING, Status.SENDING]
        )
        return not waiting.exists() and clean_sandbox.inbox.in_flight() == 0

    wait_for(settled, timeout=90, interval=0.3, message="every job finished")
    final = Counter(EmailJob.objects.filter(topic=topic).values_list("status", flat=True))
    assert set(final) <= {Status.SENT, Status.CANCELLED}
    assert final[Status.CANCELLED] == len(cancelled)  # nothing cancelled came back to life
    delivered = delivered_jobs(clean_sandbox)
    assert not cancelled & set(delivered), "a cancelled job reached a provider"
    sent = set(
        EmailJob.objects.filter(topic=topic, status=Status.SENT).values_list("id", flat=True)
    )
    notices = set(EmailJob.objects.filter(topic=notice_topic).values_list("id", flat=True))
    assert EmailJob.objects.filter(topic=notice_topic, status=Status.SENT).count() == 4
    assert set(delivered) <= sent | notices
    print(
        f"\nat commit: {dict(at_commit)}; after: {dict(final)}; "
        f"delivered {len(delivered)} (of them {len(notices)} notices), "
        f"cancelled never delivered: {len(cancelled)}"
    )
