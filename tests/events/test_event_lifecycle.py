"""Events through their services: create, update, cancel, delete, and what guests are sent."""

import datetime as dt
from collections import Counter

import pytest
import redis
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from icalendar import Calendar

from delivery.models import EmailJob
from delivery.services import email_jobs_cancel
from events.models import Event
from events.services import EventFields, event_cancel, event_create, event_delete, event_update
from invitations.guestlist import Guest
from invitations.models import Invitation, RetiredToken
from invitations.services import invitation_accept
from reliability import locks
from tests.events.factories import event_fields, jobs, make_event, tokens

pytestmark = pytest.mark.django_db
Status = EmailJob.Status
Rsvp = Invitation.Rsvp


def statuses(**filters) -> Counter:
    return Counter(EmailJob.objects.filter(**filters).values_list("status", flat=True))


def answered(event: Event, accepted: int, waitlisted: int = 0) -> dict[str, str]:
    """Guests 0..accepted-1 accept, the next ``waitlisted`` are waitlisted (capacity allowing)."""
    links = tokens(event)
    for i in range(accepted + waitlisted):
        invitation_accept(token=links[f"guest{i}@example.com"], party_size=1)
    return links


def test_create_with_guests_writes_event_invitations_and_emails_together(organizer):
    event = make_event(organizer, guests=3)
    invitations = list(Invitation.objects.filter(event=event).select_related("email_job"))
    assert len(invitations) == 3
    for invitation in invitations:
        assert invitation.email_job.kind == "invitation"
        assert invitation.email_job.to_email == invitation.email
        assert invitation.email_job.topic == f"event:{event.pk}"
        assert "/i/" in invitation.email_job.text_body
        assert invitation.email_job.text_body.startswith("Hello Guest guest")


def test_create_rolls_everything_back_when_a_guest_email_cannot_be_written(organizer, monkeypatch):
    from invitations.services import organizer as organizer_actions

    def broken(drafts):
        raise ValidationError({"to_email": "refused by the outbox"})

    monkeypatch.setattr(organizer_actions, "email_enqueue", broken)
    with pytest.raises(ValidationError):
        make_event(organizer, guests=3)
    assert Event.objects.count() == Invitation.objects.count() == EmailJob.objects.count() == 0


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"title": "Party\r\nBcc: evil@example.com"}, "title"),
        ({"title": "Party\nTime"}, "title"),
        ({"title": "   "}, "title"),
        ({"location": "Hall\rB"}, "location"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"timezone": "../../etc/passwd"}, "timezone"),
        ({"capacity": 0}, "capacity"),
        ({"plus_ones_allowed": -1}, "plus_ones_allowed"),
        ({"description": "x" * 5001}, "description"),
    ],
)
def test_bad_event_fields_are_refused_and_nothing_is_written(organizer, overrides, field):
    with pytest.raises(ValidationError) as caught:
        make_event(organizer, guests=2, **overrides)
    assert field in caught.value.message_dict
    assert Event.objects.count() == EmailJob.objects.count() == 0


def test_times_must_make_sense(organizer):
    fields = event_fields()
    cases = {
        "ends_at": {"ends_at": fields.starts_at},
        "rsvp_deadline": {"rsvp_deadline": fields.starts_at + dt.timedelta(minutes=1)},
        "starts_at": {
            "starts_at": fields.starts_at - dt.timedelta(days=20),
            "ends_at": fields.ends_at - dt.timedelta(days=20),
        },
    }
    for field, overrides in cases.items():
        with pytest.raises(ValidationError) as caught:
            event_create(organizer=organizer, fields=event_fields(**overrides))
        assert field in caught.value.message_dict
    assert Event.objects.count() == 0


def moved(event: Event, **overrides) -> EventFields:
    current = EventFields.of(Event.objects.get(pk=event.pk))
    return EventFields(**{**vars(current), **overrides})


def test_moving_an_event_sends_accepted_guests_an_update_with_sequence_plus_one(organizer):
    event = make_event(organizer, guests=4, capacity=2)
    answered(event, accepted=2, waitlisted=1)
    later = event.starts_at + dt.timedelta(days=1)
    result = event_update(
        event=event, fields=moved(event, starts_at=later, ends_at=later + dt.timedelta(hours=3))
    )
    assert result.changed == ["starts_at", "ends_at"] and result.update_emails == 2
    updates = jobs("update")
    assert sorted(j.to_email for j in updates) == ["guest0@example.com", "guest1@example.com"]
    [entry] = Calendar.from_ical(updates[0].ics).walk("VEVENT")
    assert entry["SEQUENCE"] == event.sequence + 1 == Event.objects.get(pk=event.pk).sequence
    assert entry.decoded("DTSTART") == later
    assert "changed the time" in updates[0].text_body


def test_a_new_place_is_an_update_too_but_capacity_is_not(organizer):
    event = make_event(organizer, guests=2, capacity=5)
    answered(event, accepted=1)
    event_update(event=event, fields=moved(event, capacity=6, plus_ones_allowed=1))
    assert jobs("update") == [] and Event.objects.get(pk=event.pk).sequence == 0
    event_update(event=event, fields=moved(event, location="The other hall"))
    [update] = jobs("update")
    assert "changed the place" in update.text_body and "The other hall" in update.text_body


def test_moving_the_event_moves_the_reminders(organizer, settings):
    settings.GPMAS_REMINDER_OFFSET_SECONDS = 7200
    event = make_event(organizer, guests=2)
    answered(event, accepted=2)
    old = jobs("reminder")
    later = event.starts_at + dt.timedelta(days=2)
    event_update(
        event=event, fields=moved(event, starts_at=later, ends_at=later + dt.timedelta(hours=1))
    )
    for job in old:
        job.refresh_from_db()
        assert job.status == Status.CANCELLED
    new = jobs("reminder", status=Status.QUEUED)
    assert len(new) == 2
    assert {job.not_before for job in new} == {later - dt.timedelta(hours=2)}
    assert set(Invitation.objects.values_list("reminder_job_id", flat=True)) == {j.pk for j in new}


def test_capacity_cannot_drop_below_the_seats_taken(organizer):
    event = make_event(organizer, guests=3, capacity=5)
    answered(event, accepted=3)
    with pytest.raises(ValidationError) as caught:
        event_update(event=event, fields=moved(event, capacity=2))
    assert "3 seats are taken" in caught.value.message_dict["capacity"][0]
    assert Event.objects.get(pk=event.pk).capacity == 5


def test_raising_the_capacity_promotes_the_waitlist(organizer):
    event = make_event(organizer, guests=4, capacity=1)
    answered(event, accepted=1, waitlisted=3)
    result = event_update(event=event, fields=moved(event, capacity=3))
    assert result.promoted == 2
    assert [j.to_email for j in jobs("promotion")] == ["guest1@example.com", "guest2@example.com"]
    assert Invitation.objects.get(email="guest3@example.com").rsvp == Rsvp.WAITLISTED


def test_cancelling_keeps_the_record_stops_queued_emails_and_tells_the_guests(organizer):
    event = make_event(organizer, guests=5, capacity=2)
    answered(event, accepted=2, waitlisted=1)
    EmailJob.objects.filter(kind="invitation", to_email="guest3@example.com").update(
        status=Status.SENT, finished_at=event.created_at
    )
    event_cancel(event=event)
    event.refresh_from_db()
    assert event.status == "cancelled" and event.sequence == 1 and event.cancelled_at
    # 4 unsent invitations, 2 confirmations, 2 reminders, 1 waitlist email
    assert statuses(topic=event.topic) == {Status.CANCELLED: 9, Status.SENT: 1}
    notices = jobs("cancellation")
    # accepted, waitlisted, and the pending guest whose invitation went out; not guest4
    assert sorted(j.to_email for j in notices) == [f"guest{i}@example.com" for i in range(4)]
    assert {j.topic for j in notices} == {f"event:{event.pk}:cancellation"}
    with_calendar = [j for j in notices if j.ics]
    assert sorted(j.to_email for j in with_calendar) == ["guest0@example.com", "guest1@example.com"]
    assert Calendar.from_ical(with_calendar[0].ics)["METHOD"] == "CANCEL"
    event_cancel(event=event)  # again: nothing more
    assert len(jobs("cancellation")) == 4


def test_deleting_cancels_queued_emails_and_notifies_accepted_and_waitlisted(organizer):
    event = make_event(organizer, guests=5, capacity=2)
    answered(event, accepted=2, waitlisted=1)
    event_id, links = event.pk, tokens(event)
    deletion = event_delete(event=event)
    assert not Event.objects.filter(pk=event_id).exists()
    assert not Invitation.objects.exists()
    assert statuses(topic=f"event:{event_id}") == {Status.CANCELLED: deletion.cancelled_jobs}
    notices = jobs("cancellation")
    assert deletion.notices == 3
    assert sorted(j.to_email for j in notices) == [f"guest{i}@example.com" for i in range(3)]
    accepted_notice = next(j for j in notices if j.to_email == "guest0@example.com")
    calendar = Calendar.from_ical(accepted_notice.ics)
    [entry] = calendar.walk("VEVENT")
    assert calendar["METHOD"] == "CANCEL" and entry["SEQUENCE"] == 1
    assert entry["STATUS"] == "CANCELLED"
    assert "Summer party" in accepted_notice.text_body  # rendered: needs no event to be sent
    # The notices are outside the event's topic: a later cleanup of that topic keeps them.
    email_jobs_cancel(topic=f"event:{event_id}", reason="again")
    assert statuses(kind="cancellation") == {Status.QUEUED: 3}
    # The links answer 410 with a reason, not 404.
    assert RetiredToken.objects.count() == 5
    response = Client().get(reverse("guest_invitation", args=[links["guest0@example.com"]]))
    assert response.status_code == 410 and "Event deleted" in response.content.decode()


def test_deleting_a_cancelled_event_does_not_notify_twice(organizer):
    event = make_event(organizer, guests=2)
    answered(event, accepted=1)
    event_cancel(event=event)
    assert event_delete(event=event).notices == 0
    assert len(jobs("cancellation")) == 1


def test_deletion_waits_for_the_events_lock_and_changes_nothing_when_it_stays_busy(
    organizer, settings
):
    settings.GPMAS_LOCK_WAIT_SECONDS = 0.5
    event = make_event(organizer, guests=2)
    with locks.hold(f"event:{event.pk}"), pytest.raises(locks.LockBusy):
        event_delete(event=event)
    assert Event.objects.filter(pk=event.pk).exists()
    assert statuses() == {Status.QUEUED: 2}


def test_deletion_goes_ahead_on_the_database_alone_when_redis_is_down(organizer, monkeypatch):
    event = make_event(organizer, guests=2)

    def unreachable(*args, **kwargs):
        raise redis.ConnectionError("Redis is down")

    monkeypatch.setattr(locks.redis_lock, "Lock", unreachable)
    event_delete(event=event)
    assert not Event.objects.exists()


def test_an_event_created_with_an_existing_list_skips_duplicate_lines(organizer):
    guests = [Guest("a@example.com"), Guest("a@example.com"), Guest("b@example.com")]
    event, report = event_create(organizer=organizer, fields=event_fields(), guests=guests)
    assert len(report.invited) == 2 and [g.email for g in report.already_invited] == [
        "a@example.com"
    ]
    assert Invitation.objects.filter(event=event).count() == 2


def test_a_change_rewrites_invitations_not_sent_yet_with_new_links(organizer):
    event = make_event(organizer, guests=3)
    old_links = tokens(event)
    sent = Invitation.objects.get(email="guest0@example.com").email_job
    EmailJob.objects.filter(pk=sent.pk).update(status=Status.SENT, finished_at=event.created_at)
    result = event_update(event=event, fields=moved(event, title="Summer party, moved indoors"))
    assert result.invitations_rewritten == 2
    new_links = tokens(event)
    assert new_links["guest0@example.com"] == old_links["guest0@example.com"]  # already out
    for guest in ("guest1@example.com", "guest2@example.com"):
        assert new_links[guest] != old_links[guest]
        invitation = Invitation.objects.get(email=guest)
        assert "moved indoors" in invitation.email_job.text_body
        old = Client().get(reverse("guest_invitation", args=[old_links[guest]]))
        assert old.status_code == 410
    assert statuses(kind="invitation") == {Status.SENT: 1, Status.CANCELLED: 2, Status.QUEUED: 2}


def test_guest_emails_reply_to_the_organizer(organizer):
    make_event(organizer, guests=1)
    assert jobs("invitation")[0].headers["Reply-To"] == "olivia@example.com"
