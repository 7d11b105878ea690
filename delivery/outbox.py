"""Email job state transitions (DESIGN.md §4): the only code that sets ``EmailJob.status``.

Every transition is one conditional UPDATE on the states it may leave, so two processes racing
for the same job cannot both win: the loser updates zero rows and moves on. A worker's writes on
a job it claimed are fenced by the attempt number it claimed it with: once its lease has been
reconciled and the job claimed again, the first worker's late update matches nothing.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from delivery.models import DeliveryAttempt, EmailJob, Provider
from reliability.halt import is_halted
from reliability.models import SystemControl
from reliability.retry import backoff_delay

Status = EmailJob.Status
WAITING = [Status.QUEUED, Status.RETRYING]


def due_jobs(now: dt.datetime) -> QuerySet[EmailJob]:
    """Jobs a worker may claim now."""
    return EmailJob.objects.filter(status__in=WAITING, next_attempt_at__lte=now).filter(
        Q(not_before__isnull=True) | Q(not_before__lte=now)
    )


def claim(job_id: int, *, now: dt.datetime | None = None) -> EmailJob | None:
    """queued/retrying -> sending, counting an attempt. None: not due, or someone else has it."""
    claimed = claim_many([job_id], now=now)
    return claimed[0] if claimed else None


def claim_many(job_ids: Iterable[int], *, now: dt.datetime | None = None) -> list[EmailJob]:
    """Claim every job of ``job_ids`` that is due and free, in one transaction; in id order.

    The row locks are taken with SKIP LOCKED: a job another worker is claiming right now is
    simply not ours, and nobody waits for anybody.
    """
    now = now or timezone.now()
    lease = dt.timedelta(seconds=settings.GPMAS_JOB_LEASE_SECONDS)
    with transaction.atomic():
        free = list(
            due_jobs(now)
            .filter(pk__in=list(job_ids))
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)
        )
        if not free:
            return []
        EmailJob.objects.filter(pk__in=free).update(
            status=Status.SENDING, attempts=F("attempts") + 1, lease_expires_at=now + lease
        )
    claimed = EmailJob.objects.select_related("pinned_provider").filter(pk__in=free)
    return list(claimed.order_by("pk"))


def _held(job: EmailJob) -> QuerySet[EmailJob]:
    return EmailJob.objects.filter(pk=job.pk, status=Status.SENDING, attempts=job.attempts)


def mark_sent(job: EmailJob, *, provider: Provider, message_id: str) -> bool:
    return bool(
        _held(job).update(
            status=Status.SENT,
            provider=provider,
            provider_message_id=message_id[:255],
            lease_expires_at=None,
            finished_at=timezone.now(),
            last_error="",
        )
    )


@dataclass(frozen=True)
class Accepted:
    """A provider took a job's message: the attempt to append and the id it gave."""

    job: EmailJob
    provider: Provider
    message_id: str
    started_at: dt.datetime
    duration_ms: int


def record_accepted(accepted: Accepted) -> bool:
    """Append the accepted attempt and mark the job sent, atomically; then read the halt switch.

    Returns whether sending is halted now, as read after the write: the send path uses that
    reading as its check before the next provider call, instead of a query of its own. On
    PostgreSQL all of it is one statement, one round trip (this runs once per message); other
    databases get the same effect from a transaction and a second query.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_accepted_sql(), _accepted_params(accepted, timezone.now()))
            return cursor.fetchone()[0]
    with transaction.atomic():
        DeliveryAttempt.objects.create(
            job=accepted.job,
            provider=accepted.provider,
            started_at=accepted.started_at,
            duration_ms=accepted.duration_ms,
            outcome=DeliveryAttempt.Outcome.ACCEPTED,
        )
        mark_sent(accepted.job, provider=accepted.provider, message_id=accepted.message_id)
    return is_halted()


def record_accepted_together(accepted: list[Accepted]) -> bool:
    """``record_accepted`` for the jobs of one batch call: a handful of queries for them all."""
    now = timezone.now()
    with transaction.atomic():
        DeliveryAttempt.objects.bulk_create(
            DeliveryAttempt(
                job=a.job,
                provider=a.provider,
                started_at=a.started_at,
                duration_ms=a.duration_ms,
                outcome=DeliveryAttempt.Outcome.ACCEPTED,
            )
            for a in accepted
        )
        _held_all(a.job for a in accepted).update(
            status=Status.SENT,
            provider=accepted[0].provider,
            provider_message_id=accepted[0].message_id[:255],
            lease_expires_at=None,
            finished_at=now,
            last_error="",
        )
    return is_halted()


@functools.cache
def _accepted_sql() -> str:
    attempt, job = DeliveryAttempt._meta, EmailJob._meta
    return f"""
        WITH attempt AS (
            INSERT INTO {attempt.db_table} ({", ".join(_columns(attempt, ACCEPTED_ATTEMPT))})
            VALUES ({", ".join(["%s"] * len(ACCEPTED_ATTEMPT))})
        ), job AS (
            UPDATE {job.db_table} SET {", ".join(f"{c} = %s" for c in _columns(job, SENT))}
            WHERE id = %s AND status = %s AND attempts = %s
        )
        SELECT EXISTS (SELECT 1 FROM {SystemControl._meta.db_table} WHERE id = 1 AND halted)
    """


ACCEPTED_ATTEMPT = (
    "job",
    "provider",
    "started_at",
    "duration_ms",
    "outcome",
    "error_code",
    "error_message",
)
SENT = (
    "status",
    "provider",
    "provider_message_id",
    "lease_expires_at",
    "finished_at",
    "last_error",
)


def _columns(meta, names: tuple[str, ...]) -> list[str]:
    return [connection.ops.quote_name(meta.get_field(name).column) for name in names]


def _accepted_params(accepted: Accepted, now: dt.datetime) -> list:
    job, provider = accepted.job, accepted.provider
    attempt = [
        job.pk,
        provider.pk,
        accepted.started_at,
        accepted.duration_ms,
        DeliveryAttempt.Outcome.ACCEPTED,
        "",
        "",
    ]
    sent = [Status.SENT, provider.pk, accepted.message_id[:255], None, now, ""]
    return [*attempt, *sent, job.pk, Status.SENDING, job.attempts]


def mark_failed(job: EmailJob, *, error: str) -> bool:
    return bool(
        _held(job).update(
            status=Status.FAILED,
            lease_expires_at=None,
            finished_at=timezone.now(),
            last_error=error,
        )
    )


def is_exhausted(job: EmailJob, now: dt.datetime) -> bool:
    too_old = now - job.created_at >= dt.timedelta(seconds=settings.GPMAS_MAX_AGE_SECONDS)
    return job.attempts >= job.max_attempts or too_old


def retry_delay(attempts: int, retry_after: float | None = None) -> dt.timedelta:
    seconds = backoff_delay(
        attempts,
        base=settings.GPMAS_BACKOFF_BASE_SECONDS,
        cap=settings.GPMAS_BACKOFF_CAP_SECONDS,
        retry_after=retry_after,
    )
    return dt.timedelta(seconds=seconds)


def schedule_retry(job: EmailJob, *, error: str, retry_after: float | None = None) -> str:
    """sending -> retrying after a backoff, or -> failed once attempts or age are used up.

    Returns the status the job was left in ("" when the job was no longer ours).
    """
    now = timezone.now()
    if is_exhausted(job, now):
        reason = f"gave up after {job.attempts} attempt(s): {error}"
        return Status.FAILED if mark_failed(job, error=reason) else ""
    updated = _held(job).update(
        status=Status.RETRYING,
        next_attempt_at=now + retry_delay(job.attempts, retry_after),
        lease_expires_at=None,
        dispatched_at=None,
        last_error=error,
    )
    return Status.RETRYING if updated else ""


def release(job: EmailJob, *, due_at: dt.datetime, reason: str) -> bool:
    """sending -> queued without counting the attempt: nothing was tried (halt, no provider)."""
    return bool(release_many([job], due_at=due_at, reason=reason))


def _held_all(jobs: Iterable[EmailJob]) -> QuerySet[EmailJob]:
    """``_held`` for many jobs at once."""
    held = Q(pk__in=[])
    for job in jobs:
        held |= Q(pk=job.pk, attempts=job.attempts)
    return EmailJob.objects.filter(held, status=Status.SENDING)


def release_many(jobs: Iterable[EmailJob], *, due_at: dt.datetime, reason: str) -> int:
    """``release`` for the claimed jobs of a batch that were not tried, in one UPDATE."""
    return _held_all(jobs).update(
        status=Status.QUEUED,
        attempts=F("attempts") - 1,
        next_attempt_at=due_at,
        lease_expires_at=None,
        dispatched_at=None,
        last_error=reason,
    )


def cancel(jobs: QuerySet[EmailJob], *, reason: str) -> int:
    """queued/retrying -> cancelled. A job already sending finishes; terminal ones stay."""
    return jobs.filter(status__in=WAITING).update(
        status=Status.CANCELLED, finished_at=timezone.now(), last_error=reason
    )


def make_due_now(jobs: QuerySet[EmailJob]) -> int:
    """Waiting jobs become due at once (admin "retry now", resume after a halt)."""
    now = timezone.now()
    return jobs.filter(status__in=WAITING).update(next_attempt_at=now, dispatched_at=None)


def reconcile_expired_leases(*, now: dt.datetime | None = None, limit: int = 500) -> int:
    """sending jobs whose lease ran out -> retrying (or failed), with an ``unknown`` attempt.

    The worker that held the job died or hung; whether the provider got the message is unknown,
    so the attempt counts and the job is tried again (at-least-once delivery).
    """
    now = now or timezone.now()
    expired = EmailJob.objects.filter(status=Status.SENDING, lease_expires_at__lt=now)
    count = 0
    for job in expired.order_by("lease_expires_at")[:limit]:
        with transaction.atomic():
            outcome = schedule_retry(job, error="lease expired: the worker holding it stopped")
            if outcome:
                DeliveryAttempt.objects.create(
                    job=job,
                    provider=None,
                    started_at=job.lease_expires_at,
                    outcome=DeliveryAttempt.Outcome.UNKNOWN,
                    error_code="lease_expired",
                    error_message="worker lost before recording an outcome",
                )
                count += 1
    return count


def stamp_dispatched(job_ids: Iterable[int], *, now: dt.datetime) -> None:
    EmailJob.objects.filter(pk__in=list(job_ids)).update(dispatched_at=now)


def clear_dispatched(job_ids: Iterable[int]) -> None:
    EmailJob.objects.filter(pk__in=list(job_ids), status__in=WAITING).update(dispatched_at=None)
