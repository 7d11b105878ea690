"""What an event's guests get when the event changes, is cancelled or is deleted. Called by
``events.services`` inside its transaction, with the event row locked."""

from __future__ import annotations

import datetime as dt

from django.db.models import Q

from delivery.models import EmailJob
from delivery.services import email_enqueue, email_jobs_cancel_by_id
from events.models import Event
from invitations import emails
from invitations.models import Invitation, RetiredToken
from invitations.services.guest_mail import BATCH_SIZE, reminders_rewrite
from invitations.tokens import invitation_url, token_new

Rsvp = Invitation.Rsvp


def guests_notify_update(event: Event, *, changes: list[str], now: dt.datetime) -> int:
    """After a guest-visible change: updated calendar entries (when time or place changed) and
    rewritten reminders for the accepted guests. Returns the number of update emails."""
    accepted = list(
        Invitation.objects.live().filter(event=event, rsvp=Rsvp.ACCEPTED).order_by("id")
    )
    if not accepted:
        return 0
    if changes:
        shared = emails.event_context(event)
        email_enqueue(
            emails.update_draft(event, inv, changes=changes, shared=shared) for inv in accepted
        )
    reminders_rewrite(event, accepted, now)
    return len(accepted) if changes else 0


def invitations_refresh_unsent(event: Event) -> int:
    """After a guest-visible change, invitation emails no provider has been tried with yet are
    written again with the new details. Raw tokens are not kept, so each gets a new link; the
    old link (never sent) answers 410. Returns how many were rewritten."""
    unsent = list(
        Invitation.objects.live()
        .filter(event=event, email_job__status=EmailJob.Status.QUEUED, email_job__attempts=0)
        .order_by("id")
    )
    shared = emails.batch_context(event)
    rewritten = 0
    for start in range(0, len(unsent), BATCH_SIZE):
        rewritten += _rewrite_batch(event, unsent[start : start + BATCH_SIZE], shared)
    return rewritten


def _rewrite_batch(event: Event, batch: list[Invitation], shared: dict) -> int:
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
    for invitation, job in zip(batch, email_enqueue(drafts), strict=True):
        invitation.email_job_id = job.pk
    Invitation.objects.bulk_update(batch, ["token_hash", "email_job"], batch_size=BATCH_SIZE)
    return len(batch)


def guests_notify_cancellation(event: Event, *, sequence: int, deleted: bool) -> int:
    """Cancellation notices to the guests who expect the event: accepted and waitlisted, and
    (when cancelled, not deleted) pending guests whose invitation email went out."""
    notify = Q(rsvp__in=[Rsvp.ACCEPTED, Rsvp.WAITLISTED])
    if not deleted:
        sent = [EmailJob.Status.SENDING, EmailJob.Status.SENT]
        notify |= Q(rsvp=Rsvp.PENDING, email_job__status__in=sent)
    guests = Invitation.objects.live().filter(event=event).filter(notify)
    shared = emails.event_context(event)
    drafts = [
        emails.cancellation_draft(event, inv, sequence=sequence, deleted=deleted, shared=shared)
        for inv in guests.order_by("id")
    ]
    return len(email_enqueue(drafts))


def tokens_retire_for_event(event: Event) -> None:
    hashes = Invitation.objects.filter(event=event).values_list("token_hash", flat=True)
    RetiredToken.objects.bulk_create(
        [RetiredToken(token_hash=h, reason=RetiredToken.Reason.EVENT_DELETED) for h in hashes],
        batch_size=BATCH_SIZE,
        ignore_conflicts=True,
    )
