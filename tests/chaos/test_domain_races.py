"""Chaos scenarios 9 and 10: an event deleted while its invitations are being sent, and bursts
of simultaneous accepts, with the Redis lock working and with it lapsing mid-way
(docs/invariants.md)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from types import SimpleNamespace

import pytest
import redis_lock

from delivery.models import EmailJob
from events.models import Event, EventQuerySet
from events.services import event_delete
from invitations.services import invitation_accept, seats_recount
from reliability import locks
from tests.chaos import checker
from tests.chaos.conftest import assert_targets, finish, slow_providers
from tests.chaos.harness import SCALE, append_report, scaled
from tests.events.factories import make_event, tokens
from tests.invitations.test_concurrency import fire
from tests.processes import database_slots, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.chaos, pytest.mark.django_db(transaction=True)]


def event_with_its_first_invitations_sent(stack, organizer) -> Event:
    """An event with its invitations being sent (the first ten are), and four guests who
    answered: 3 accepted, 1 waitlisted, so each gets a cancellation notice."""
    event = make_event(organizer, guests=scaled(150), capacity=3)
    links = tokens(event)
    for i in range(4):  # 3 accepted, 1 waitlisted: each gets a cancellation notice
        invitation_accept(token=links[f"guest{i}@example.com"], party_size=1)
    topic = event.topic
    stack.nudge()
    wait_for(
        lambda: EmailJob.objects.filter(topic=topic, status="sent").count() >= 10,
        timeout=60,
        message="the first invitations sent",
    )
    return event


def delivered_late(captured, topic: str, *, deleted_at: float, sending: set[int]) -> set[int]:
    """A job of the event that reached a provider after the commit must have been sending then:
    the jobs that were not."""
    return {
        c.job_id
        for c in captured
        if c.received_at > deleted_at + checker.GRACE_SECONDS
        and c.job_id not in sending
        and EmailJob.objects.filter(pk=c.job_id, topic=topic).exists()
    }


def test_deleting_an_event_while_its_invitations_are_sent_stops_every_queued_one(
    start_stack, clean_sandbox, organizer
):
    slow_providers(clean_sandbox, 40)
    stack = start_stack("delete-event")
    event = event_with_its_first_invitations_sent(stack, organizer)
    topic, notice_topic = event.topic, event.notice_topic

    deletion = event_delete(event=event)
    deleted_at = time.time()
    cancelled = set(
        EmailJob.objects.filter(topic=topic, status="cancelled").values_list("id", flat=True)
    )
    sending_at_commit = set(
        EmailJob.objects.filter(topic=topic, status="sending").values_list("id", flat=True)
    )
    stack.nudge()  # the notices were written by the deletion
    job_ids = list(
        EmailJob.objects.filter(topic__in=[topic, notice_topic]).values_list("id", flat=True)
    )
    result = finish(
        "9 event deleted while sending",
        job_ids,
        clean_sandbox,
        fault_start=deleted_at,
        fault_end=deleted_at,
        cancelled_at_commit=len(cancelled),
    )
    captured = checker.snapshot(job_ids, clean_sandbox).captures
    delivered_cancelled = {c.job_id for c in captured} & cancelled
    late = delivered_late(captured, topic, deleted_at=deleted_at, sending=sending_at_commit)
    result.extra.update(cancelled_delivered=len(delivered_cancelled), queued_sent_after=len(late))
    assert deletion.cancelled_jobs == len(cancelled) > 0, "the deletion did not land mid-way"
    assert delivered_cancelled == set()
    assert late == set()
    assert_targets(result)
    assert EmailJob.objects.filter(topic=notice_topic, status="sent").count() == 4


CAPACITY, DISTINCT_GUESTS, DOUBLE_CLICKS = 10, 160, 40  # 200 accepts per round


class LapsingLock(redis_lock.Lock):
    """The project's lock without auto-renewal: it expires while its holder still runs."""

    lapsed = 0
    _count = threading.Lock()

    def __init__(self, *args, **kwargs) -> None:
        kwargs["auto_renewal"] = False
        super().__init__(*args, **kwargs)

    def release(self) -> None:
        try:
            super().release()
        except redis_lock.NotAcquired:
            with LapsingLock._count:
                LapsingLock.lapsed += 1
            raise


def lock_expiring_mid_section(monkeypatch) -> None:
    """Expiry 1 s, no renewal, and a critical section of more than 1 s: the second click of a
    double click takes the "same" lock while the first still runs. Only the database guards
    (event row lock, the invitation read again under it, the seat counter) remain."""
    LapsingLock.lapsed = 0
    monkeypatch.setattr(locks, "DEFAULT_EXPIRE_SECONDS", 1)
    monkeypatch.setattr(
        locks, "redis_lock", SimpleNamespace(Lock=LapsingLock, NotAcquired=redis_lock.NotAcquired)
    )
    real_locked = EventQuerySet.locked

    def slow_locked(self, event_id: int):
        time.sleep(1.3)  # inside the Redis lock, before the row lock
        return real_locked(self, event_id)

    monkeypatch.setattr(EventQuerySet, "locked", slow_locked)


def accept_retrying_when_busy(token: str) -> str:
    """A guest who is told "busy, try again" (LockBusy, a 409 on the web) tries again."""
    for _ in range(5):
        try:
            return invitation_accept(token=token, party_size=1).outcome
        except locks.LockBusy:
            time.sleep(0.2)
    return "busy"


@pytest.mark.parametrize("lock", ["redis lock", "lock expires mid-section"])
def test_simultaneous_accepts_never_overbook_or_accept_twice(organizer, monkeypatch, lock):
    if lock == "lock expires mid-section":
        lock_expiring_mid_section(monkeypatch)
    rounds = min(20, int(3 * SCALE))  # 3 in CI, 20 in the long form
    overbooked = doubles = fired = 0
    outcomes_total: Counter[str] = Counter()
    started = time.time()
    for _ in range(rounds):
        event = make_event(organizer, guests=DISTINCT_GUESTS, capacity=CAPACITY)
        links = list(tokens(event).values())
        burst = links + links[:DOUBLE_CLICKS]  # the first 40 guests click twice at once
        outcomes = fire(burst, accept_retrying_when_busy)
        fired += len(burst)
        errors = [o for o in outcomes if isinstance(o, Exception)]
        assert errors == [], errors[:3]
        outcomes_total.update(outcomes)
        accepts = Counter(t for t, o in zip(burst, outcomes, strict=True) if o == "accepted")
        accepted_twice = [token for token, n in accepts.items() if n > 1]
        fresh = Event.objects.get(pk=event.pk)
        overbooked += checker.overbooked_events(
            [(fresh.capacity, seats_recount(fresh), fresh.seats_taken)]
        )
        doubles += max(len(accepted_twice), checker.double_acceptances([event.topic]))
        confirmations = EmailJob.objects.filter(topic=event.topic, kind="confirmation").count()
        assert confirmations == seats_recount(fresh) == CAPACITY
    elapsed = time.time() - started
    result = checker.Report(
        scenario=f"10 {DISTINCT_GUESTS + DOUBLE_CLICKS} accepts vs capacity {CAPACITY} "
        f"x{rounds} ({lock})",
        submitted=fired,
        statuses=dict(outcomes_total),
        lost=0,
        duplicates=[],
        stuck=0,
        recovery_p50=None,
        recovery_p99=None,
        recovery_max=None,
        overbookings=overbooked,
        double_acceptances=doubles,
        throughput=fired / elapsed,  # accepts answered per second
        duration_s=elapsed,
        extra={"locks_lapsed": LapsingLock.lapsed, "db_slots": database_slots()},
    )
    append_report(result.to_dict())
    print("\n" + checker.MARKDOWN_HEADER + "\n" + result.markdown_row())
    assert "busy" not in outcomes_total
    assert_targets(result)
    if lock == "lock expires mid-section":
        assert LapsingLock.lapsed > 0, "the lock never lapsed: the scenario tested nothing"
