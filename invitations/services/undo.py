"""Undo a revoke, for a short while (``GPMAS_REVOKE_UNDO_SECONDS``): the guest is back as they
were, with their answer, their seats and their place on the waitlist.

Emails the revoke cancelled are made good: an invitation email that never went out goes out now
with a new link (its old email, cancelled, held the only copy of the link), and an accepted
guest's reminder is scheduled again. Refused (409, nothing changed) after the window, for an
invitation that is not revoked, when the guest was invited again meanwhile, or when their seats
have gone to someone else.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from delivery.models import EmailJob
from delivery.services import email_enqueue
from events.errors import EventClosed, Refusal
from invitations import emails
from invitations.models import Invitation
from invitations.selectors import undo_until
from invitations.services.guest_mail import reminder_write
from invitations.services.organizer import _locked_invitation
from invitations.services.seats import seats_adjust
from invitations.tokens import invitation_url, token_new


class UndoRefused(Refusal):
    status = 409
    reason = "undo"


def invitation_unrevoke(*, invitation: Invitation) -> Invitation:
    with transaction.atomic():
        now = timezone.now()
        event, invitation = _locked_invitation(invitation)
        if not invitation.is_revoked:
            raise UndoRefused("This invitation is not revoked: there is nothing to undo.")
        if not undo_until(invitation, now):
            raise UndoRefused("Too late to undo this revoke; invite the guest again instead.")
        if event.is_cancelled or event.has_ended(now):
            raise EventClosed("This event is cancelled or over.")
        if Invitation.objects.live().filter(event=event, email=invitation.email).exists():
            raise UndoRefused(f"{invitation.email} has been invited again already.")
        if event.capacity is not None and (
            event.seats_taken + invitation.seats_held > event.capacity
        ):
            raise UndoRefused("Their seats have gone to another guest; invite them again instead.")
        seats_adjust(event, invitation.seats_held)
        invitation.revoked_at = None
        fields = ["revoked_at"]
        if _never_sent(invitation.email_job_id):
            token, invitation.token_hash = token_new()
            draft = emails.invitation_draft(event, invitation, link=invitation_url(token))
            [invitation.email_job] = email_enqueue([draft])
            fields += ["token_hash", "email_job"]
        if invitation.rsvp == Invitation.Rsvp.ACCEPTED:
            # A new version names a new reminder: the cancelled one keeps its key.
            invitation.response_version = F("response_version") + 1
            invitation.save(update_fields=[*fields, "response_version"])
            invitation.refresh_from_db()
            reminder_write(event, invitation, now)
            fields = ["reminder_job"]
        invitation.save(update_fields=fields)
        return invitation


def _never_sent(job_id: int | None) -> bool:
    return EmailJob.objects.filter(pk=job_id, status=EmailJob.Status.CANCELLED).exists()
