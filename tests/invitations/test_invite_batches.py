"""A big invite commits batch by batch (README Decisions): the first guests' emails can go while
the rest of the list is written; a failure keeps the batches before it and nothing after; inside
an event's creation the whole is still one commit."""

import threading

import pytest
from django.db import connection

from delivery.models import EmailJob
from events.errors import EventClosed
from events.models import Event
from events.services import event_cancel, event_create
from invitations.guestlist import Guest
from invitations.models import Invitation
from invitations.services import invitations_invite
from invitations.services import organizer as invite_service
from tests.events.factories import event_fields, make_event

pytestmark = pytest.mark.django_db
GUESTS = [Guest(email=f"g{i}@example.com", name=f"Guest {i}") for i in range(7)]


class BatchFailed(Exception):
    pass


@pytest.fixture
def batches_of_three(monkeypatch):
    monkeypatch.setattr(invite_service, "BATCH_SIZE", 3)


def fail_in_batch(monkeypatch, number: int) -> None:
    """The ``number``-th batch of the invite raises after writing its rows."""
    write = invite_service._invite_batch
    calls = []

    def failing(*args):
        calls.append(1)
        written = write(*args)
        if len(calls) == number:
            raise BatchFailed("the database went away")
        return written

    monkeypatch.setattr(invite_service, "_invite_batch", failing)


def invited_emails(event) -> list[str]:
    return sorted(Invitation.objects.filter(event=event).values_list("email", flat=True))


def test_a_failed_batch_keeps_the_ones_before_it_and_the_same_list_again_invites_the_rest(
    organizer, batches_of_three, monkeypatch
):
    event = make_event(organizer)
    fail_in_batch(monkeypatch, 2)
    with pytest.raises(BatchFailed):
        invitations_invite(event=event, guests=GUESTS)
    first = sorted(guest.email for guest in GUESTS[:3])
    assert invited_emails(event) == first
    assert sorted(EmailJob.objects.values_list("to_email", flat=True)) == first

    monkeypatch.undo()
    monkeypatch.setattr(invite_service, "BATCH_SIZE", 3)
    report = invitations_invite(event=event, guests=GUESTS)
    assert [guest.email for guest in report.already_invited] == first
    assert [invitation.email for invitation in report.invited] == [g.email for g in GUESTS[3:]]
    assert invited_emails(event) == sorted(guest.email for guest in GUESTS)
    assert EmailJob.objects.count() == len(GUESTS)  # one email each, none twice


def test_an_event_created_with_its_guests_is_still_one_commit(
    organizer, batches_of_three, monkeypatch
):
    fail_in_batch(monkeypatch, 3)
    with pytest.raises(BatchFailed):
        event_create(organizer=organizer, fields=event_fields(), guests=GUESTS)
    assert not Event.objects.exists()
    assert not Invitation.objects.exists() and not EmailJob.objects.exists()


def test_an_event_cancelled_between_batches_stops_the_invite_and_says_how_many_went(
    organizer, batches_of_three, monkeypatch
):
    event = make_event(organizer)
    write = invite_service._invite_batch

    def cancelling(locked, *args):
        written = write(locked, *args)
        event_cancel(event=locked)  # in this batch's transaction: the next one finds it closed
        return written

    monkeypatch.setattr(invite_service, "_invite_batch", cancelling)
    with pytest.raises(EventClosed, match="3 guests were invited before that, nobody after"):
        invitations_invite(event=event, guests=GUESTS)
    assert len(invited_emails(event)) == 3
    # The cancellation cancelled the emails it found waiting, these three among them.
    assert set(EmailJob.objects.filter(kind="invitation").values_list("status", flat=True)) == {
        EmailJob.Status.CANCELLED
    }


@pytest.mark.django_db(transaction=True)
def test_the_first_batch_is_committed_while_the_next_is_written(
    organizer, batches_of_three, monkeypatch
):
    event = make_event(organizer)
    read = invite_service._live_emails
    seen_from_outside = []

    def look_from_another_connection():
        # What a worker would see: its own connection, outside the invite's transaction.
        try:
            jobs = EmailJob.objects.filter(kind="invitation").count()
            seen_from_outside.append((Invitation.objects.filter(event=event).count(), jobs))
        finally:
            connection.close()

    def reading(locked, addresses):
        if addresses == [guest.email for guest in GUESTS[3:6]]:  # the second batch starts
            other = threading.Thread(target=look_from_another_connection)
            other.start()
            other.join(timeout=30)
        return read(locked, addresses)

    monkeypatch.setattr(invite_service, "_live_emails", reading)
    report = invitations_invite(event=event, guests=GUESTS)
    assert len(report.invited) == len(GUESTS)
    assert seen_from_outside == [(3, 3)]
