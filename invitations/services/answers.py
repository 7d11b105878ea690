"""Guests' answers: accept (or join the waitlist), decline, and the promotions they cause.

Every change of an answer happens with the event row locked and the seats recounted, so answers
to one event are serialized by the database (docs/invariants.md, "seats"). The Redis lock per
invitation in front of that only keeps a double click from queueing two transactions.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from events.models import Event
from invitations import emails
from invitations.errors import (
    AnswersClosed,
    InvitationError,
    InvitationGone,
    InvitationNotFound,
    NotEnoughSeats,
)
from invitations.models import Invitation, RetiredToken
from invitations.services.guest_mail import answer_write, jobs_cancel, reminder_write
from invitations.services.seats import (
    seats_adjust,
    seats_recount,
    waiting_ahead,
    waitlist,
    waitlist_position,
)
from invitations.tokens import invitation_url, token_hash
from reliability.locks import hold_if_available

Rsvp = Invitation.Rsvp
MAX_TOKEN_LENGTH = 100


@dataclass
class Answer:
    invitation: Invitation
    outcome: str  # accepted | waitlisted | declined | unchanged
    waitlist_position: int = 0


def invitation_by_token(token: str) -> Invitation:
    """The live invitation of a raw token, with its event; raises 404/410 errors otherwise."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise InvitationNotFound("This invitation link is not valid.")
    digest = token_hash(token)
    found = Invitation.objects.select_related("event", "event__organizer")
    invitation = found.filter(token_hash=digest).first()
    if invitation is None:
        retired = RetiredToken.objects.filter(token_hash=digest).first()
        if retired is None:
            raise InvitationNotFound("This invitation link is not valid.")
        if retired.reason == RetiredToken.Reason.EVENT_DELETED:
            raise InvitationGone("The organizer deleted this event.", reason="event_deleted")
        raise InvitationGone(
            "This link was replaced by a newer invitation email.", reason="replaced"
        )
    if invitation.is_revoked:
        raise InvitationGone("The organizer withdrew this invitation.", reason="revoked")
    return invitation


def event_check_open(event: Event, now: dt.datetime | None = None) -> None:
    """Raise unless the event still takes answers from its invitation links."""
    if event.is_cancelled:
        raise InvitationGone("The organizer cancelled this event.", reason="event_cancelled")
    if event.has_ended(now):
        raise InvitationGone("This event is over.", reason="event_ended")


def _lock_for_answer(found: Invitation, token: str) -> tuple[Event, Invitation, dt.datetime]:
    """Lock the event row, then read the invitation afresh: while we waited for the lock it
    may have been answered elsewhere, revoked, or given a new link. Also returns the time of the
    answer, read once the lock is ours: answers are ordered (the waitlist by ``waitlisted_at``)
    as they take the lock, so a guest who waited longer cannot get an earlier time than a guest
    already committed, and be told a waitlist position that is not theirs."""
    event = Event.objects.locked(found.event_id)
    now = timezone.now()
    if event is None:
        raise InvitationGone("The organizer deleted this event.", reason="event_deleted")
    invitation = invitation_by_token(token)
    invitation.event = event
    event_check_open(event, now)
    if not event.answers_open(now):
        raise AnswersClosed("Answers closed on the RSVP deadline.")
    return event, invitation, now


def invitation_accept(*, token: str, party_size: int) -> Answer:
    """Accept for a party of ``party_size`` (the guest plus plus-ones), or join the waitlist.

    Idempotent: the same answer again changes nothing and sends nothing. Raises
    ``InvitationError`` subclasses (nothing changed) and ``LockBusy`` (try again).
    """
    invitation = invitation_by_token(token)
    with hold_if_available(f"invitation:{invitation.pk}"), transaction.atomic():
        event, invitation, now = _lock_for_answer(invitation, token)
        if not 1 <= party_size <= event.max_party_size:
            raise InvitationError(
                f"Choose a party of 1 to {event.max_party_size}.", reason="party_size"
            )
        answered = invitation.rsvp in (Rsvp.ACCEPTED, Rsvp.WAITLISTED)
        if answered and invitation.party_size == party_size:
            return Answer(invitation, "unchanged", _position(invitation))
        held = invitation.seats_held
        others = seats_recount(event) - held
        fits = event.capacity is None or (
            others + party_size <= event.capacity and not waiting_ahead(invitation)
        )
        if fits or party_size <= held:
            return _accept(event, invitation, party_size, now, link=invitation_url(token))
        if held:
            raise NotEnoughSeats(
                f"There are not enough free seats for a party of {party_size}; your "
                f"acceptance for a party of {held} stays as it was."
            )
        return _waitlist(event, invitation, party_size, now, link=invitation_url(token))


def _accept(
    event: Event, invitation: Invitation, party_size: int, now: dt.datetime, *, link: str
) -> Answer:
    held = invitation.seats_held
    seats_adjust(event, party_size - held)
    _mark_accepted(invitation, party_size, now)
    reminder_write(event, invitation, now)
    answer_write(invitation, emails.confirmation_draft(event, invitation, link=link))
    invitation.save()
    if party_size < held:
        waitlist_promote(event, now)
    return Answer(invitation, "accepted")


def _waitlist(
    event: Event, invitation: Invitation, party_size: int, now: dt.datetime, *, link: str
) -> Answer:
    jobs_cancel([invitation.reminder_job_id], reason="guest waitlisted")
    invitation.reminder_job = None
    if invitation.rsvp != Rsvp.WAITLISTED:
        invitation.waitlisted_at = now
    _mark_answered(invitation, Rsvp.WAITLISTED, party_size, now)
    position = waitlist_position(invitation)
    draft = emails.waitlist_draft(event, invitation, position=position, link=link)
    answer_write(invitation, draft)
    invitation.save()
    return Answer(invitation, "waitlisted", position)


def invitation_decline(*, token: str) -> Answer:
    """Decline; seats it held go to the waitlist in order, in the same transaction."""
    invitation = invitation_by_token(token)
    with hold_if_available(f"invitation:{invitation.pk}"), transaction.atomic():
        event, invitation, now = _lock_for_answer(invitation, token)
        if invitation.rsvp == Rsvp.DECLINED:
            return Answer(invitation, "unchanged")
        held = invitation.seats_held
        jobs_cancel([invitation.reminder_job_id, invitation.answer_job_id], reason="guest declined")
        invitation.reminder_job = invitation.answer_job = None
        invitation.waitlisted_at = None
        _mark_answered(invitation, Rsvp.DECLINED, 1, now)
        invitation.save()
        seats_adjust(event, -held)
        waitlist_promote(event, now)  # also when a waitlisted party that blocked the line left
        return Answer(invitation, "declined")


def _mark_answered(invitation: Invitation, rsvp: str, party_size: int, now: dt.datetime) -> None:
    invitation.rsvp = rsvp
    invitation.party_size = party_size
    invitation.responded_at = now
    invitation.response_version += 1


def _mark_accepted(invitation: Invitation, party_size: int, now: dt.datetime) -> None:
    invitation.waitlisted_at = None
    _mark_answered(invitation, Rsvp.ACCEPTED, party_size, now)


def _position(invitation: Invitation) -> int:
    return waitlist_position(invitation) if invitation.rsvp == Rsvp.WAITLISTED else 0


def waitlist_promote(event: Event, now: dt.datetime) -> list[Invitation]:
    """Give free seats to waitlisted guests strictly in order; call with the event row locked.

    A party that does not fit yet keeps its place at the head of the line: nobody behind it
    overtakes it, so the waitlist stays first come, first served.
    """
    if event.is_cancelled:
        return []
    free = None if event.capacity is None else event.capacity - seats_recount(event)
    waiting = waitlist(event.pk)
    if free is not None:
        waiting = waiting[:free]  # every party holds at least one seat
    promoted = []
    for invitation in waiting:
        if free is not None and invitation.party_size > free:
            break
        seats_adjust(event, invitation.party_size)
        if free is not None:
            free -= invitation.party_size
        _mark_accepted(invitation, invitation.party_size, now)
        reminder_write(event, invitation, now)
        answer_write(invitation, emails.promotion_draft(event, invitation))
        invitation.save()
        promoted.append(invitation)
    return promoted
