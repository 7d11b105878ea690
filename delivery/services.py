"""Writing to the outbox (docs/architecture.md, "The write path").

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
from django.db import transaction
from django.utils import timezone

from delivery import bulk_copy, outbox, suppression, unsubscribe
from delivery.message import JOB_HEADER
from delivery.models import EmailJob, Provider
from delivery.publishing import publish_or_fail_fast
from delivery.tasks import drain
from delivery.validation import check_address, check_from, check_headers, check_subject

log = logging.getLogger(__name__)

BATCH_SIZE = 1000
KINDS = frozenset(EmailJob.Kind.values)


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
    # The organizer whose list this is (invitations, reminders): none if the address unsubscribed.
    list_owner_id: int | None = None

    def to_job(self, *, now: dt.datetime) -> EmailJob:
        if self.kind not in KINDS:
            raise ValidationError({"kind": f"{self.kind!r} is not a kind of email."})
        if JOB_HEADER.lower() in (name.lower() for name in self.headers):
            raise ValidationError({"headers": f"{JOB_HEADER} is set by the outbox."})
        job = bulk_copy.instance(
            EmailJob,
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
            pinned_provider_id=self.pinned_provider.pk if self.pinned_provider else None,
            list_owner_id=self.list_owner_id,
            status=EmailJob.Status.QUEUED,
            max_attempts=settings.GPMAS_MAX_ATTEMPTS,
            not_before=self.not_before,
            next_attempt_at=max(now, self.not_before) if self.not_before else now,
        )
        if self.pinned_provider:
            job.pinned_provider = self.pinned_provider  # the instance the caller holds, cached
        return job


def email_enqueue(drafts: Iterable[EmailDraft]) -> list[EmailJob]:
    """Write email jobs in the caller's transaction; the jobs, in the drafts' order.

    Every draft is validated before anything is written: one bad draft (an invalid address, a
    CR/LF in a subject or header, an unknown kind) raises ValidationError and writes nothing.
    Idempotent on ``idempotency_key``: a draft whose key the outbox has already gets the job
    written the first time, not a second one. Thousands at a time cost three queries per
    thousand (the INSERT and two reads) and one read each of the suppression list and of the
    unsubscribes (none when no draft has a list owner), not one per message. A job to a
    suppressed address, or to one that unsubscribed from the job's list owner, is written
    ``suppressed`` (terminal) and never reaches a provider.
    """
    now = timezone.now()
    built = [draft.to_job(now=now) for draft in drafts]
    _mark_suppressed(built, now=now)
    jobs: list[EmailJob] = []
    with transaction.atomic():
        for start in range(0, len(built), BATCH_SIZE):
            jobs += _write_batch(built[start : start + BATCH_SIZE])
    if jobs:
        transaction.on_commit(nudge_drain)
    return jobs


def _mark_suppressed(jobs: list[EmailJob], *, now: dt.datetime) -> None:
    """(none) -> suppressed, before the INSERT: the jobs whose address is on the suppression
    list (a confirmation still goes unless the guest complained; ``delivery.suppression``) or
    unsubscribed from the job's list owner (``delivery.unsubscribe``)."""
    blocked = suppression.blocked((job.to_email for job in jobs), now=now)
    unsubscribed = unsubscribe.blocked(jobs)
    for job in jobs:
        address = suppression.normalized(job.to_email)
        reason = blocked.get(address)
        if reason and suppression.stops(job.kind, reason):
            error = suppression.not_sent_note(reason)
        elif (job.list_owner_id, address) in unsubscribed:
            error = unsubscribe.REASON
        else:
            continue
        job.status, job.finished_at, job.last_error = EmailJob.Status.SUPPRESSED, now, error


def _write_batch(jobs: list[EmailJob]) -> list[EmailJob]:
    """INSERT, skipping keys the outbox has; then give every job its row's id.

    Rows the INSERT did not report (all of them, but for COPY) are read back by key: a row whose
    ``created_at`` is not the one this INSERT wrote existed before (or came from an earlier
    draft of the same call), and that job is replaced by the stored row.
    """
    rows: dict[str, tuple] = {}  # idempotency key -> (id, created_at) of the rows written
    if bulk_copy.can_copy(len(jobs)):
        returning = ("id", "created_at")
        rows = bulk_copy.copy_insert(
            EmailJob, jobs, key="idempotency_key", returning=returning, skip_conflicts=True
        )
    else:
        EmailJob.objects.bulk_create(jobs, ignore_conflicts=True)
    unknown = [job.idempotency_key for job in jobs if job.idempotency_key not in rows]
    if unknown:
        stored = EmailJob.objects.filter(idempotency_key__in=unknown)
        rows.update(
            (key, (pk, created))
            for key, pk, created in stored.values_list("idempotency_key", "pk", "created_at")
        )
    existing = []
    for index, job in enumerate(jobs):
        job.pk, created = rows[job.idempotency_key]
        job._state.adding = False
        if created != job.created_at:
            existing.append(index)
    if existing:
        earlier = EmailJob.objects.in_bulk([jobs[index].pk for index in existing])
        for index in existing:
            jobs[index] = earlier[jobs[index].pk]
    return jobs


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
            list_owner_id=job.list_owner_id,
        )
        for job in jobs.filter(status=EmailJob.Status.FAILED)
    ]
    count += len(email_enqueue(copies))
    if count:
        transaction.on_commit(nudge_drain)
    return count


def nudge_drain() -> None:
    """Ask for a drain now. Best effort: the periodic drain finds the jobs anyway.

    The request expires like the periodic one: nudges written while no worker consumes (workers
    down or busy) would otherwise pile up, and a returning worker would run thousands of drains,
    one after the other, before the first send (seen in the soak benchmark: 2,203 of them).
    """
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
    drafts = [
        EmailDraft(
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
    with transaction.atomic():
        return email_enqueue(drafts)
