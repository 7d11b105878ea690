"""What an organizer does to invitations: invite (thousands at a time), resend, revoke."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from delivery import bulk_copy
from delivery.services import email_enqueue
from events.errors import EventClosed
from events.models import Event
from invitations import emails
from invitations.errors import InvitationNotFound
from invitations.guestlist import Guest
from invitations.models import Invitation, RetiredToken
from invitations.services.answers import waitlist_promote
from invitations.services.guest_mail import BATCH_SIZE, jobs_cancel
from invitations.services.seats import seats_adjust
from invitations.tokens import invitation_url, token_new


@dataclass
class InviteReport:
    invited: list[Invitation] = field(default_factory=list)
    already_invited: list[Guest] = field(default_factory=list)


def invitations_invite(*, event: Event, guests: Sequence[Guest]) -> InviteReport:
    """Invite every guest not invited yet (a live invitation with the same email), a thousand at
    a time: each batch's invitations and their emails commit together, under the event's lock,
    so the first guests' emails are on their way while the next batch is written (README
    Decisions, "A big invite commits batch by batch"). Inside a caller's transaction (an event
    created with its guests) the batches are savepoints of it and the whole is one commit.

    A failure stops at a batch boundary: the batches before it stay invited, none after it, and
    confirming the same list again invites the rest (the invited ones are skipped)."""
    report = InviteReport()
    seen: set[str] = set()
    for start in range(0, len(guests), BATCH_SIZE):
        with transaction.atomic():
            locked = _open_event(event.pk, invited_so_far=len(report.invited))
            batch = guests[start : start + BATCH_SIZE]
            # Read under the lock, so a concurrent invite of the same guest cannot slip between.
            seen |= _live_emails(locked, [guest.email for guest in batch])
            new = []
            for guest in batch:
                (report.already_invited if guest.email in seen else new).append(guest)
                seen.add(guest.email)
            if new:
                report.invited += _invite_batch(locked, new, emails.batch_context(locked))
    return report


def _open_event(event_id: int, *, invited_so_far: int) -> Event:
    """The event's row, locked, while it still takes guests; else ``EventClosed``, saying how
    many guests were invited before it closed."""
    locked = Event.objects.locked(event_id)
    closed = locked is None or locked.is_cancelled or locked.has_ended(timezone.now())
    if not closed:
        return locked
    if invited_so_far:
        raise EventClosed(
            f"The event was cancelled, deleted or ended while the list was being written: "
            f"{invited_so_far} guests were invited before that, nobody after."
        )
    if locked is None:
        raise EventClosed("This event no longer exists.")
    raise EventClosed("This event is cancelled or over: nobody can be invited to it.")


def _live_emails(event: Event, addresses: list[str]) -> set[str]:
    live = Invitation.objects.live().filter(event=event, email__in=addresses)
    return set(live.values_list("email", flat=True))


def _invite_batch(event: Event, guests: Sequence[Guest], shared: dict) -> list[Invitation]:
    invitations, drafts = [], []
    for guest in guests:
        token, digest = token_new()
        invitation = bulk_copy.instance(
            Invitation, event_id=event.pk, email=guest.email, name=guest.name, token_hash=digest
        )
        invitation.event = event  # cached: the event is the one locked, not read again
        invitations.append(invitation)
        link = invitation_url(token)
        drafts.append(emails.invitation_draft(event, invitation, link=link, shared=shared))
    # The emails first, so each invitation is written already pointing at its email.
    for invitation, job in zip(invitations, email_enqueue(drafts), strict=True):
        invitation.email_job_id = job.pk
    return bulk_copy.insert_all(Invitation, invitations, key="token_hash")


def _locked_invitation(invitation: Invitation) -> tuple[Event, Invitation]:
    """The invitation's event row locked, and the invitation read again under that lock."""
    event = Event.objects.locked(invitation.event_id)
    invitation = Invitation.objects.filter(pk=invitation.pk, event=event).first()
    if event is None or invitation is None:
        raise InvitationNotFound("This invitation no longer exists.")
    return event, invitation


def invitation_resend(*, invitation: Invitation) -> Invitation:
    """A new link in a new email; the old link stops working and its queued email is cancelled."""
    with transaction.atomic():
        event, invitation = _locked_invitation(invitation)
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
        [invitation.email_job] = email_enqueue([draft])
        invitation.save(update_fields=["token_hash", "email_job"])
        return invitation


def invitation_revoke(*, invitation: Invitation) -> Invitation:
    """The link stops working, its waiting emails are cancelled, and held seats are freed."""
    with transaction.atomic():
        now = timezone.now()
        event, invitation = _locked_invitation(invitation)
        if invitation.is_revoked:
            return invitation
        held = invitation.seats_held
        jobs_cancel(
            [invitation.email_job_id, invitation.answer_job_id, invitation.reminder_job_id],
            reason="invitation revoked",
        )
        invitation.revoked_at = now
        invitation.save(update_fields=["revoked_at"])
        seats_adjust(event, -held)
        waitlist_promote(event, now)
        return invitation
