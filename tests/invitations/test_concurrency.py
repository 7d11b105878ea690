"""Simultaneous accepts against real PostgreSQL: seats never exceed capacity (docs/invariants.md,
"Seats").

Each round fires 120 accepts at once (threads released together by a barrier, each with its own
database connection) at an event with 10 seats. The server allows 100 connections and is shared,
so the threads reach the database through a bounded number of slots, as a connection pool
would; the slots are sized from the server's free connections. The control runs switch the
guards off to show that the race is real and that each guard matters.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable

import pytest
from django.db import IntegrityError, connection
from django.db.models import F

from delivery.models import EmailJob
from events.models import Event, EventQuerySet
from invitations.errors import SeatsConflict
from invitations.models import Invitation
from invitations.services import answers, invitation_accept, seats_recount
from tests.events.factories import make_event, tokens
from tests.processes import database_slots

pytestmark = pytest.mark.django_db(transaction=True)

CAPACITY = 10
GUESTS = 120
ROUNDS = 3  # the chaos suite repeats the race with double clicks and a lapsing lock


def fire(tokens_: list[str], call: Callable[[str], object]) -> list[object]:
    """Run ``call(token)`` for every token at once; each thread closes its connection."""
    barrier = threading.Barrier(len(tokens_))
    slots = threading.BoundedSemaphore(database_slots())
    results: list[object] = [None] * len(tokens_)

    def run(index: int, token: str) -> None:
        try:
            barrier.wait(timeout=30)
            with slots:
                try:
                    results[index] = call(token)
                finally:
                    connection.close()
        except Exception as exc:  # collected and asserted on by the test
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i, t)) for i, t in enumerate(tokens_)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def accept_one(token: str) -> str:
    return invitation_accept(token=token, party_size=1).outcome


def seats(event: Event) -> tuple[int, int]:
    """(seats held by accepted invitations, the event's seat counter)."""
    return seats_recount(event), Event.objects.get(pk=event.pk).seats_taken


def no_locks(monkeypatch) -> None:
    """Control: no Redis lock, no row lock on the event."""
    monkeypatch.setattr(answers, "hold_if_available", lambda *a, **k: contextlib.nullcontext())
    monkeypatch.setattr(
        EventQuerySet,
        "locked",
        lambda self, event_id: self.select_related("organizer").filter(pk=event_id).first(),
    )


@pytest.mark.postgres
def test_simultaneous_accepts_never_take_more_seats_than_the_capacity(organizer):
    figures = []
    for round_ in range(ROUNDS):
        event = make_event(organizer, guests=GUESTS, capacity=CAPACITY)
        started = time.monotonic()
        outcomes = fire(list(tokens(event).values()), accept_one)
        elapsed = time.monotonic() - started
        errors = [o for o in outcomes if isinstance(o, Exception)]
        assert errors == [], errors[:3]
        assert Counter(outcomes) == {"accepted": CAPACITY, "waitlisted": GUESTS - CAPACITY}
        assert seats(event) == (CAPACITY, CAPACITY)
        confirmations = EmailJob.objects.filter(topic=event.topic, kind="confirmation").count()
        waitlist_emails = EmailJob.objects.filter(topic=event.topic, kind="waitlist").count()
        assert (confirmations, waitlist_emails) == (CAPACITY, GUESTS - CAPACITY)
        figures.append(f"round {round_ + 1}: {CAPACITY} seats taken, {elapsed:.2f}s")
    print(
        f"\nguarded, {GUESTS} accepts per round, {database_slots()} db slots: " + "; ".join(figures)
    )


@pytest.mark.postgres
def test_control_without_any_guard_the_race_overbooks(organizer, monkeypatch):
    """Locks off and the seat counter left alone (it and its check constraint would refuse the
    overbooking, see the next test): the recount alone, read without the row lock, lets
    several guests take the same last seats."""
    no_locks(monkeypatch)
    monkeypatch.setattr(answers, "seats_adjust", lambda event, delta: None)
    taken = []
    for _ in range(3):
        event = make_event(organizer, guests=GUESTS, capacity=CAPACITY)
        outcomes = fire(list(tokens(event).values()), accept_one)
        assert not [o for o in outcomes if isinstance(o, Exception)]
        taken.append(seats_recount(event))
    print(f"\ncontrol without guards: accepted seats per round {taken} (capacity {CAPACITY})")
    assert max(taken) > CAPACITY


def unconditional_adjust(event: Event, delta: int) -> None:
    Event.objects.filter(pk=event.pk).update(seats_taken=F("seats_taken") + delta)


@pytest.mark.postgres
@pytest.mark.parametrize("guard", ["conditional update", "check constraint"])
def test_control_without_locks_the_seat_counter_still_refuses_overbooking(
    organizer, monkeypatch, guard
):
    """Locks off; what remains is the counter's conditional UPDATE (or, with that off too, the
    check constraint). The racing transactions that would overbook are refused and roll back."""
    no_locks(monkeypatch)
    if guard == "check constraint":
        monkeypatch.setattr(answers, "seats_adjust", unconditional_adjust)
    refused_total = 0
    for _ in range(2):
        event = make_event(organizer, guests=GUESTS, capacity=CAPACITY)
        outcomes = fire(list(tokens(event).values()), accept_one)
        refused = [o for o in outcomes if isinstance(o, SeatsConflict | IntegrityError)]
        others = [o for o in outcomes if isinstance(o, Exception) and o not in refused]
        assert others == []
        accepted_seats, counter = seats(event)
        assert accepted_seats == counter <= CAPACITY
        refused_total += len(refused)
    print(f"\ncontrol without locks, {guard}: {refused_total} overbooking attempts refused")
    assert refused_total > 0


def test_two_tabs_and_double_clicks_give_one_acceptance_and_one_confirmation(organizer):
    event = make_event(organizer, guests=1, capacity=CAPACITY)
    token = tokens(event)["guest0@example.com"]
    outcomes = fire([token] * 12, accept_one)
    assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
    assert Counter(outcomes) == {"accepted": 1, "unchanged": 11}
    assert Invitation.objects.get().rsvp == "accepted"
    assert EmailJob.objects.filter(kind="confirmation").count() == 1
    assert seats(event) == (1, 1)
