"""The emails an invitation owns (its invitation, the latest answer email, its reminder), written
to the outbox in the caller's transaction, and cancelled while still waiting when superseded."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

from django.conf import settings

from delivery.services import EmailDraft, email_enqueue, email_jobs_cancel_by_id
from events.models import Event
from invitations import emails
from invitations.models import Invitation

BATCH_SIZE = 1000


def jobs_cancel(job_ids: Iterable[int | None], *, reason: str) -> None:
    """Cancel those of the jobs still waiting; sent and sending ones stay as they are."""
    ids = [job_id for job_id in job_ids if job_id]
    for start in range(0, len(ids), BATCH_SIZE):
        email_jobs_cancel_by_id(job_ids=ids[start : start + BATCH_SIZE], reason=reason)


def enqueue_and_link(
    invitations: Sequence[Invitation], drafts: Sequence[EmailDraft], attr: str
) -> None:
    """Write one job per invitation and point ``invitation.<attr>`` at it (saved in bulk). Only
    the ids are kept: thousands of rendered messages need not stay in memory."""
    for invitation, job in zip(invitations, email_enqueue(drafts), strict=True):
        setattr(invitation, f"{attr}_id", job.pk)
    Invitation.objects.bulk_update(invitations, [attr], batch_size=BATCH_SIZE)


def answer_write(invitation: Invitation, draft: EmailDraft) -> None:
    """Queue the email about the guest's new answer; the one about the old answer, if it is
    still waiting, is cancelled."""
    jobs_cancel([invitation.answer_job_id], reason="answer changed")
    [invitation.answer_job] = email_enqueue([draft])


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
    invitation.reminder_job = None
    if send_at:
        [invitation.reminder_job] = email_enqueue(
            [emails.reminder_draft(event, invitation, send_at=send_at)]
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
