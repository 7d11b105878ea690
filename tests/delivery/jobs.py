"""Test helpers for the outbox: one email job written through the real enqueue, one sent
through the real send path."""

from __future__ import annotations

from django.utils import timezone

from delivery import outbox
from delivery.models import EmailJob, Provider
from delivery.sending import jobs_send
from delivery.services import EmailDraft, email_enqueue


def draft(**overrides) -> EmailDraft:
    fields = {"kind": "test", "to_email": "guest@example.com", "subject": "Hi", "text_body": "b"}
    return EmailDraft(**{**fields, **overrides})


def new_job(**overrides) -> EmailJob:
    [job] = email_enqueue([draft(**overrides)])
    return job


def send_one(job: EmailJob) -> str:
    """Send one job as a worker would; the status it was left in."""
    return jobs_send(job_ids=[job.pk])[job.pk]


def claim(job_id: int) -> EmailJob | None:
    """Claim one job as a worker would; None when it is not due or someone else has it."""
    claimed = outbox.claim_many([job_id])
    return claimed[0] if claimed else None


def mark_sent(held: EmailJob, *, provider: Provider | None = None, message_id: str = "m") -> bool:
    """Record an acceptance of a claimed job as the send path does; whether it took effect
    (False when the job was no longer held under that claim)."""
    was_held = EmailJob.objects.filter(
        pk=held.pk, status=EmailJob.Status.SENDING, attempts=held.attempts
    ).exists()
    accepted = outbox.Attempt(held, provider, timezone.now(), 0, "accepted", message_id=message_id)
    outbox.record_accepted([accepted])
    return was_held
