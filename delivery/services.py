"""Writing to the outbox (DESIGN.md §5, write path).

Callers write their domain rows and their EmailJob rows in one transaction; the drain is nudged
only after that transaction commits, and nothing depends on the nudge arriving.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from delivery import outbox
from delivery.message import JOB_HEADER
from delivery.models import EmailJob, Provider
from delivery.validation import check_address, check_from, check_headers, check_subject

log = logging.getLogger(__name__)

BULK_BATCH_SIZE = 1000


@dataclass
class EmailDraft:
    """One message to write to the outbox, rendered already."""

    kind: str
    to_email: str
    subject: str
    text_body: str
    html_body: str = ""
    from_email: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    ics: str = ""
    topic: str = ""
    idempotency_key: str = ""
    not_before: dt.datetime | None = None
    pinned_provider: Provider | None = None

    def to_job(self, *, now: dt.datetime) -> EmailJob:
        if self.kind not in EmailJob.Kind.values:
            raise ValidationError({"kind": f"{self.kind!r} is not a kind of email."})
        if JOB_HEADER.lower() in (name.lower() for name in self.headers):
            raise ValidationError({"headers": f"{JOB_HEADER} is set by the outbox."})
        return EmailJob(
            kind=self.kind,
            topic=self.topic,
            to_email=check_address(self.to_email, "to_email"),
            from_email=check_from(self.from_email or settings.GPMAS_DEFAULT_FROM_EMAIL),
            subject=check_subject(self.subject),
            text_body=self.text_body,
            html_body=self.html_body,
            headers=check_headers(dict(self.headers)),
            ics=self.ics,
            idempotency_key=self.idempotency_key or uuid.uuid4().hex,
            pinned_provider=self.pinned_provider,
            status=EmailJob.Status.QUEUED,
            max_attempts=settings.GPMAS_MAX_ATTEMPTS,
            not_before=self.not_before,
            next_attempt_at=max(now, self.not_before) if self.not_before else now,
        )


def email_enqueue(**draft_fields) -> EmailJob:
    """Write one email job in the caller's transaction; idempotent on ``idempotency_key``.

    Raises ValidationError (and writes nothing) on an invalid address, a CR/LF in a subject or
    header, or an unknown kind.
    """
    draft = EmailDraft(**draft_fields)
    job = draft.to_job(now=timezone.now())
    try:
        with transaction.atomic():
            job.save()
    except IntegrityError:
        existing = EmailJob.objects.filter(idempotency_key=job.idempotency_key).first()
        if existing is None:
            raise
        return existing
    transaction.on_commit(nudge_drain)
    return job


def email_enqueue_bulk(drafts: Iterable[EmailDraft]) -> int:
    """Write many jobs in batches (one INSERT per batch, not per message). Returns the count.

    Every draft is validated before anything is written: one bad draft writes nothing. Drafts
    whose idempotency key already exists are skipped.
    """
    now = timezone.now()
    jobs = [draft.to_job(now=now) for draft in drafts]
    with transaction.atomic():
        for start in range(0, len(jobs), BULK_BATCH_SIZE):
            EmailJob.objects.bulk_create(
                jobs[start : start + BULK_BATCH_SIZE], ignore_conflicts=True
            )
    if jobs:
        transaction.on_commit(nudge_drain)
    return len(jobs)


def email_jobs_cancel(*, topic: str, reason: str) -> int:
    """Cancel every waiting job of a topic (e.g. ``event:42``). Sending jobs finish."""
    return outbox.cancel(EmailJob.objects.filter(topic=topic), reason=reason)


def email_jobs_cancel_by_id(*, job_ids: Sequence[int], reason: str) -> int:
    return outbox.cancel(EmailJob.objects.filter(pk__in=job_ids), reason=reason)


def email_jobs_retry_now(*, job_ids: Sequence[int]) -> int:
    """Waiting jobs: due now. Failed jobs stay failed (terminal) and get a fresh copy queued."""
    jobs = EmailJob.objects.filter(pk__in=job_ids)
    count = outbox.make_due_now(jobs)
    copies = [
        EmailDraft(
            kind=job.kind,
            to_email=job.to_email,
            from_email=job.from_email,
            subject=job.subject,
            text_body=job.text_body,
            html_body=job.html_body,
            headers=job.headers,
            ics=job.ics,
            topic=job.topic,
            idempotency_key=f"{job.idempotency_key}:retry:{uuid.uuid4().hex[:8]}",
            pinned_provider=job.pinned_provider,
        )
        for job in jobs.filter(status=EmailJob.Status.FAILED)
    ]
    count += email_enqueue_bulk(copies)
    if count:
        transaction.on_commit(nudge_drain)
    return count


def nudge_drain() -> None:
    """Ask for a drain now. Best effort: the periodic drain finds the jobs anyway.

    The request expires like the periodic one: nudges written while no worker consumes (workers
    down or busy) would otherwise pile up, and a returning worker would run thousands of drains,
    one after the other, before the first send (seen in the soak benchmark: 2,203 of them).
    """
    from delivery.tasks import drain, publish_or_fail_fast

    try:
        publish_or_fail_fast(drain, expires=settings.GPMAS_DRAIN_INTERVAL_SECONDS * 2)
    except Exception:  # broker down: the beat-driven drain picks the jobs up later
        log.warning("could not nudge the drain; the periodic drain will send the jobs")


def email_enqueue_provider_tests(*, to_email: str, provider_name: str = "") -> list[EmailJob]:
    """One test email per enabled provider (or just the named one), each pinned to it, so an
    operator sees every provider deliver. Raises ValidationError for an unknown provider."""
    providers = Provider.objects.filter(enabled=True).order_by("name")
    if provider_name:
        providers = Provider.objects.filter(name=provider_name)
        if not providers:
            raise ValidationError({"provider": f"no provider named {provider_name!r}"})
    elif not providers:
        raise ValidationError({"provider": "no provider is enabled"})
    stamp = timezone.now()
    with transaction.atomic():
        return [
            email_enqueue(
                kind=EmailJob.Kind.TEST,
                to_email=to_email,
                subject=f"GPMAS test through {provider.name}",
                text_body=(
                    f"This test email was sent through provider {provider.name} "
                    f"({provider.get_kind_display()}) at {stamp:%Y-%m-%d %H:%M:%S %Z}."
                ),
                topic="test",
                pinned_provider=provider,
            )
            for provider in providers
        ]
