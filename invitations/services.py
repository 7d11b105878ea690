"""Invitation writes (DESIGN.md §5): invite, accept, decline, resend, revoke, promote.

Every change of an answer happens with the event row locked (``select_for_update``) and the
seats recounted, so answers to one event are serialized by the database. The Redis lock per
invitation in front of that only keeps a double click from queueing two transactions. The seat
counter ``Event.seats_taken`` moves by conditional UPDATEs and is capped by a check constraint:
the last guard against overbooking, should every lock fail.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, QuerySet, Sum
from django.utils import timezone

from delivery.models import EmailJob
from delivery.services import EmailDraft, email_enqueue, email_enqueue_bulk, email_jobs_cancel_by_id
from events.models import Event
from invitations import emails
from invitations.guestlist import Guest
from invitations.models import Invitation, RetiredToken
from invitations.tokens import invitation_url, token_hash, token_new
from reliability.locks import hold_if_available

Rsvp = Invitation.Rsvp
BATCH_SIZE = 1000
MAX_TOKEN_LENGTH = 100


class InvitationError(Exception):
    """A refusal with a status code and a sentence for the person who asked."""

    status = 400
    reason = "invalid"

    def __init__(self, message: str = "", *, reason: str = "") -> None:
        self.reason = reason or self.reason
        super().__init__(message or self.reason)


class InvitationNotFound(InvitationError):
    status = 404
    reason = "unknown"


class InvitationGone(InvitationError):
    """The link existed but no longer works: revoked, replaced, event cancelled/deleted/over."""

    status = 410


class AnswersClosed(InvitationError):
    status = 410
    reason = "deadline"


class NotEnoughSeats(InvitationError):
    status = 409
    reason = "full"


class SeatsConflict(InvitationError):
    """The seat counter refused a change the recount allowed: lost row lock or a bug."""

    status = 409
    reason = "conflict"


class EventClosed(InvitationError):
    status = 409
    reason = "closed"


@dataclass
class Answer:
    invitation: Invitation
    outcome: str  # accepted | waitlisted | declined | unchanged
    waitlist_position: int = 0


@dataclass
class InviteReport:
    invited: list[Invitation] = field(default_factory=list)
    already_invited: list[Guest] = field(default_factory=list)


# --- Lookups and guards ------------------------------------------------------------------------


def invitation_by_token(token: str) -> Invitation:
    """The live invitation of a raw token, with its event; raises 404/410 errors otherwise."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise InvitationNotFound("This invitation link is not valid.")
    digest = token_hash(token)
    invitation = (
        Invitation.objects.select_related("event", "event__organizer")
        .filter(token_hash=digest)
        .first()
    )
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
    if event.is_cancelled:
        raise InvitationGone("The organizer cancelled this event.", reason="event_cancelled")
    if event.has_ended(now):
        raise InvitationGone("This event is over.", reason="event_ended")


def event_lock(event_id: int) -> Event | None:
    """The event row, locked until the transaction ends (a no-op lock on SQLite, where every
    write transaction holds the whole database). Only the event's row: not its organizer's."""
    events = Event.objects.select_for_update(of=("self",)).select_related("organizer")
    return events.filter(pk=event_id).first()


def _lock_for_answer(found: Invitation, token: str) -> tuple[Event, Invitation, dt.datetime]:
    """Lock the event row, then read the invitation afresh: while we waited for the lock it
    may have been answered elsewhere, revoked, or given a new link. Also returns the time of the
    answer, read once the lock is ours: answers are ordered (the waitlist by ``waitlisted_at``)
    as they take the lock, so a guest who waited longer cannot get an earlier time than a guest
    already committed, and be told a waitlist position that is not theirs."""
    event = event_lock(found.event_id)
    now = timezone.now()
    if event is None:
        raise InvitationGone("The organizer deleted this event.", reason="event_deleted")
    invitation = invitation_by_token(token)
    invitation.event = event
    event_check_open(event, now)
    if not event.answers_open(now):
        raise AnswersClosed("Answers closed on the RSVP deadline.")
    return event, invitation, now


# --- Seats -------------------------------------------------------------------------------------


def seats_recount(event: Event) -> int:
    taken = Invitation.objects.filter(
        event=event, rsvp=Rsvp.ACCEPTED, revoked_at__isnull=True
    ).aggregate(seats=Sum("party_size"))["seats"]
    return taken or 0


def seats_adjust(event: Event, delta: int) -> None:
    """Move the seat counter by ``delta`` in one conditional UPDATE, never past capacity."""
    if delta == 0:
        return
    rows = Event.objects.filter(pk=event.pk)
    if delta > 0:
        rows = rows.filter(Q(capacity__isnull=True) | Q(capacity__gte=F("seats_taken") + delta))
    if not rows.update(seats_taken=F("seats_taken") + delta):
        raise SeatsConflict("The seats changed under us; please try again.")
    event.seats_taken += delta


def _ahead_of(invitation: Invitation) -> QuerySet[Invitation]:
    """Waitlisted guests before this one: all of them, unless it is waitlisted itself."""
    waiting = Invitation.objects.filter(
        event_id=invitation.event_id, rsvp=Rsvp.WAITLISTED, revoked_at__isnull=True
    )
    if invitation.rsvp != Rsvp.WAITLISTED:
        return waiting
    return waiting.filter(
        Q(waitlisted_at__lt=invitation.waitlisted_at)
        | Q(waitlisted_at=invitation.waitlisted_at, pk__lt=invitation.pk)
    )


def waiting_ahead(invitation: Invitation) -> bool:
    """Free seats go to the waitlist first: nobody overtakes a guest already waiting."""
    return _ahead_of(invitation).exists()


def waitlist_position(invitation: Invitation) -> int:
    return _ahead_of(invitation).count() + 1


# --- Outbox helpers ----------------------------------------------------------------------------


def enqueue(draft: EmailDraft) -> EmailJob:
    return email_enqueue(**vars(draft))


def jobs_cancel(job_ids: Iterable[int | None], *, reason: str) -> None:
    """Cancel those of the jobs still waiting; sent and sending ones stay as they are."""
    ids = [job_id for job_id in job_ids if job_id]
    for start in range(0, len(ids), BATCH_SIZE):
        email_jobs_cancel_by_id(job_ids=ids[start : start + BATCH_SIZE], reason=reason)


def jobs_write(drafts: Sequence[EmailDraft]) -> list[int]:
    """Write jobs in bulk; their ids, in the drafts' order. Two queries per batch: the INSERT,
    and a SELECT by idempotency key (the outbox skips a key it has, so ids are read back)."""
    ids: dict[str, int] = {}
    for start in range(0, len(drafts), BATCH_SIZE):
        batch = drafts[start : start + BATCH_SIZE]
        email_enqueue_bulk(batch)
        keys = [draft.idempotency_key for draft in batch]
        ids.update(
            EmailJob.objects.filter(idempotency_key__in=keys).values_list("idempotency_key", "id")
        )
    return [ids[draft.idempotency_key] for draft in drafts]


def enqueue_and_link(
    invitations: Sequence[Invitation], drafts: Sequence[EmailDraft], attr: str
) -> None:
    """Write one job per invitation in bulk and point ``invitation.<attr>`` at it."""
    for invitation, job_id in zip(invitations, jobs_write(drafts), strict=True):
        setattr(invitation, f"{attr}_id", job_id)
    Invitation.objects.bulk_update(invitations, [attr], batch_size=BATCH_SIZE)


def answer_write(invitation: Invitation, draft: EmailDraft) -> None:
    """Queue the email about the guest's new answer; the one about the old answer, if it is
    still waiting, is cancelled."""
    jobs_cancel([invitation.answer_job_id], reason="answer changed")
    invitation.answer_job = enqueue(draft)


def reminder_send_at(event: Event, now: dt.datetime) -> dt.datetime | None:
    offset = settings.GPMAS_REMINDER_OFFSET_SECONDS
    if offset <= 0:
        return None
    send_at = event.starts_at - dt.timedelta(seconds=offset)
    return send_at if send_at > now else None


def reminder_write(event: Event, invitation: Invitation, now: dt.datetime) -> None:
    """Schedule the accepted guest's reminder (none when its time has passed already)."""
    jobs_cancel([invitation.reminder_job_id], reason="reminder replaced")
    send_at = reminder_send_at(event, now)
    invitation.reminder_job = (
        enqueue(emails.reminder_draft(event, invitation, send_at=send_at)) if send_at else None
    )


def reminders_rewrite(event: Event, accepted: Sequence[Invitation], now: dt.datetime) -> None:
    """The event moved or changed: cancel the accepted guests' reminders, write new ones."""
    jobs_cancel([inv.reminder_job_id for inv in accepted], reason="event changed")
    send_at = reminder_send_at(event, now)
    if send_at is None:
        for invitation in accepted:
            invitation.reminder_job = None
        Invitation.objects.bulk_update(accepted, ["reminder_job"], batch_size=BATCH_SIZE)
        return
    shared = emails.event_context(event)
    drafts = [emails.reminder_draft(event, inv, send_at=send_at, shared=shared) for inv in accepted]
    enqueue_and_link(accepted, drafts, "reminder_job")


# --- Answers (guests) --------------------------------------------------------------------------


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
        if invitation.rsvp in (Rsvp.ACCEPTED, Rsvp.WAITLISTED) and (
            invitation.party_size == party_size
        ):
            return Answer(invitation, "unchanged", _position(invitation))
        held = invitation.party_size if invitation.rsvp == Rsvp.ACCEPTED else 0
        others = seats_recount(event) - held
        link = invitation_url(token)
        fits = event.capacity is None or (
            others + party_size <= event.capacity and not waiting_ahead(invitation)
        )
        if fits or party_size <= held:
            seats_adjust(event, party_size - held)
            _mark_accepted(invitation, party_size, now)
            reminder_write(event, invitation, now)
            answer_write(invitation, emails.confirmation_draft(event, invitation, link=link))
            invitation.save()
            if party_size < held:
                waitlist_promote(event, now)
            return Answer(invitation, "accepted")
        if invitation.rsvp == Rsvp.ACCEPTED:
            raise NotEnoughSeats(
                f"There are not enough free seats for a party of {party_size}; your "
                f"acceptance for a party of {held} stays as it was."
            )
        jobs_cancel([invitation.reminder_job_id], reason="guest waitlisted")
        invitation.reminder_job = None
        if invitation.rsvp != Rsvp.WAITLISTED:
            invitation.waitlisted_at = now
        invitation.rsvp = Rsvp.WAITLISTED
        invitation.party_size = party_size
        invitation.responded_at = now
        invitation.response_version += 1
        position = waitlist_position(invitation)
        answer_write(
            invitation, emails.waitlist_draft(event, invitation, position=position, link=link)
        )
        invitation.save()
        return Answer(invitation, "waitlisted", position)


def invitation_decline(*, token: str) -> Answer:
    """Decline; seats it held go to the waitlist in order, in the same transaction."""
    invitation = invitation_by_token(token)
    with hold_if_available(f"invitation:{invitation.pk}"), transaction.atomic():
        event, invitation, now = _lock_for_answer(invitation, token)
        if invitation.rsvp == Rsvp.DECLINED:
            return Answer(invitation, "unchanged")
        held = invitation.party_size if invitation.rsvp == Rsvp.ACCEPTED else 0
        jobs_cancel([invitation.reminder_job_id, invitation.answer_job_id], reason="guest declined")
        invitation.reminder_job = invitation.answer_job = None
        invitation.rsvp = Rsvp.DECLINED
        invitation.party_size = 1
        invitation.waitlisted_at = None
        invitation.responded_at = now
        invitation.response_version += 1
        invitation.save()
        seats_adjust(event, -held)
        waitlist_promote(event, now)  # also when a waitlisted party that blocked the line left
        return Answer(invitation, "declined")


def _mark_accepted(invitation: Invitation, party_size: int, now: dt.datetime) -> None:
    invitation.rsvp = Rsvp.ACCEPTED
    invitation.party_size = party_size
    invitation.waitlisted_at = None
    invitation.responded_at = now
    invitation.response_version += 1


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
    waiting = Invitation.objects.filter(
        event=event, rsvp=Rsvp.WAITLISTED, revoked_at__isnull=True
    ).order_by("waitlisted_at", "id")
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


# --- Organizer actions -------------------------------------------------------------------------


def invitations_invite(*, event: Event, guests: Sequence[Guest]) -> InviteReport:
    """Invite every guest not invited yet (a live invitation with the same email), in one
    transaction with their invitation emails. Thousands at a time, in batches."""
    with transaction.atomic():
        now = timezone.now()
        locked = event_lock(event.pk)
        if locked is None:
            raise EventClosed("This event no longer exists.")
        if locked.is_cancelled or locked.has_ended(now):
            raise EventClosed("This event is cancelled or over: nobody can be invited to it.")
        live = set(
            Invitation.objects.filter(event=locked, revoked_at__isnull=True).values_list(
                "email", flat=True
            )
        )
        report = InviteReport()
        new: list[Guest] = []
        for guest in guests:
            if guest.email in live:
                report.already_invited.append(guest)
            else:
                live.add(guest.email)
                new.append(guest)
        shared = emails.event_context(locked)
        for start in range(0, len(new), BATCH_SIZE):
            invitations, drafts = [], []
            for guest in new[start : start + BATCH_SIZE]:
                token, digest = token_new()
                invitation = Invitation(
                    event=locked, email=guest.email, name=guest.name, token_hash=digest
                )
                link = invitation_url(token)
                invitations.append(invitation)
                drafts.append(emails.invitation_draft(locked, invitation, link=link, shared=shared))
            # The emails first, so each invitation is written already pointing at its email.
            for invitation, job_id in zip(invitations, jobs_write(drafts), strict=True):
                invitation.email_job_id = job_id
            report.invited.extend(Invitation.objects.bulk_create(invitations))
        return report


def invitation_resend(*, invitation: Invitation) -> Invitation:
    """A new link in a new email; the old link stops working and its queued email is cancelled."""
    with transaction.atomic():
        event = event_lock(invitation.event_id)
        invitation = Invitation.objects.filter(pk=invitation.pk, event=event).first()
        if event is None or invitation is None:
            raise InvitationNotFound("This invitation no longer exists.")
        if invitation.is_revoked:
            raise EventClosed("This invitation was revoked; invite the guest again instead.")
        if event.is_cancelled or event.has_ended():
            raise EventClosed("This event is cancelled or over.")
        RetiredToken.objects.create(
            token_hash=invitation.token_hash, reason=RetiredToken.Reason.REPLACED
        )
        jobs_cancel([invitation.email_job_id], reason="invitation resent with a new link")
        token, invitation.token_hash = token_new()
        draft = emails.invitation_draft(event, invitation, link=invitation_url(token))
        invitation.email_job = enqueue(draft)
        invitation.save(update_fields=["token_hash", "email_job"])
        return invitation


def invitation_revoke(*, invitation: Invitation) -> Invitation:
    """The link stops working, its waiting emails are cancelled, and held seats are freed."""
    with transaction.atomic():
        now = timezone.now()
        event = event_lock(invitation.event_id)
        invitation = Invitation.objects.filter(pk=invitation.pk, event=event).first()
        if event is None or invitation is None:
            raise InvitationNotFound("This invitation no longer exists.")
        if invitation.is_revoked:
            return invitation
        held = invitation.party_size if invitation.rsvp == Rsvp.ACCEPTED else 0
        jobs_cancel(
            [invitation.email_job_id, invitation.answer_job_id, invitation.reminder_job_id],
            reason="invitation revoked",
        )
        invitation.revoked_at = now
        invitation.save(update_fields=["revoked_at"])
        seats_adjust(event, -held)
        waitlist_promote(event, now)
        return invitation


# --- Guests of an event that changes (called by events.services, inside its transaction) ------


def live_guests(event: Event, *rsvps: str) -> QuerySet[Invitation]:
    return Invitation.objects.filter(event=event, rsvp__in=rsvps, revoked_at__isnull=True)


def guests_notify_update(event: Event, *, changes: list[str], now: dt.datetime) -> int:
    """After a guest-visible change: updated calendar entries (when time or place changed) and
    rewritten reminders for the accepted guests. Returns the number of update emails."""
    accepted = list(live_guests(event, Rsvp.ACCEPTED).order_by("id"))
    if not accepted:
        return 0
    if changes:
        shared = emails.event_context(event)
        email_enqueue_bulk(
            emails.update_draft(event, inv, changes=changes, shared=shared) for inv in accepted
        )
    reminders_rewrite(event, accepted, now)
    return len(accepted) if changes else 0


def invitations_refresh_unsent(event: Event) -> int:
    """After a guest-visible change, invitation emails no provider has been tried with yet are
    written again with the new details. Raw tokens are not kept, so each gets a new link; the
    old link (never sent) answers 410. Returns how many were rewritten."""
    unsent = list(
        Invitation.objects.filter(
            event=event,
            revoked_at__isnull=True,
            email_job__status=EmailJob.Status.QUEUED,
            email_job__attempts=0,
        ).order_by("id")
    )
    shared = emails.event_context(event)
    rewritten = 0
    for start in range(0, len(unsent), BATCH_SIZE):
        batch = unsent[start : start + BATCH_SIZE]
        job_ids = [invitation.email_job_id for invitation in batch]
        email_jobs_cancel_by_id(job_ids=job_ids, reason="event changed: invitation rewritten")
        # A worker may have claimed some meanwhile: those go out as they are, link and all.
        cancelled = set(
            EmailJob.objects.filter(pk__in=job_ids, status=EmailJob.Status.CANCELLED).values_list(
                "id", flat=True
            )
        )
        batch = [invitation for invitation in batch if invitation.email_job_id in cancelled]
        retired, drafts = [], []
        for invitation in batch:
            retired.append(
                RetiredToken(token_hash=invitation.token_hash, reason=RetiredToken.Reason.REPLACED)
            )
            token, invitation.token_hash = token_new()
            link = invitation_url(token)
            drafts.append(emails.invitation_draft(event, invitation, link=link, shared=shared))
        RetiredToken.objects.bulk_create(retired)
        for invitation, job_id in zip(batch, jobs_write(drafts), strict=True):
            invitation.email_job_id = job_id
        Invitation.objects.bulk_update(batch, ["token_hash", "email_job"], batch_size=BATCH_SIZE)
        rewritten += len(batch)
    return rewritten


def guests_notify_cancellation(event: Event, *, sequence: int, deleted: bool) -> int:
    """Cancellation notices to the guests who expect the event: accepted and waitlisted, and
    (when cancelled, not deleted) pending guests whose invitation email went out."""
    notify = Q(rsvp__in=[Rsvp.ACCEPTED, Rsvp.WAITLISTED])
    if not deleted:
        sent = [EmailJob.Status.SENDING, EmailJob.Status.SENT]
        notify |= Q(rsvp=Rsvp.PENDING, email_job__status__in=sent)
    guests = Invitation.objects.filter(event=event, revoked_at__isnull=True).filter(notify)
    shared = emails.event_context(event)
    return email_enqueue_bulk(
        emails.cancellation_draft(event, inv, sequence=sequence, deleted=deleted, shared=shared)
        for inv in guests.order_by("id")
    )


def tokens_retire_for_event(event: Event) -> None:
    hashes = Invitation.objects.filter(event=event).values_list("token_hash", flat=True)
    RetiredToken.objects.bulk_create(
        [RetiredToken(token_hash=h, reason=RetiredToken.Reason.EVENT_DELETED) for h in hashes],
        batch_size=BATCH_SIZE,
        ignore_conflicts=True,
    )
