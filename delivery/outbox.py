"""The outbox's state machine (docs/job-states.md): the only code that writes a job's status, its
"sent" columns and its attempt log.

Every transition is one conditional UPDATE on the states it may leave, so two processes racing
for the same job cannot both win: the loser updates zero rows and moves on. A worker's writes on
a job it claimed are fenced by the attempt number it claimed it with: once its lease has been
reconciled and the job claimed again, the first worker's late update matches nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import F, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from delivery import event_wait
from delivery.models import DeliveryAttempt, EmailJob, Provider
from delivery.outbox_sql import accepted_params, accepted_sql
from reliability.halt import is_halted
from reliability.retry import backoff_delay

log = logging.getLogger(__name__)
Status = EmailJob.Status
Outcome = DeliveryAttempt.Outcome
WAITING = [Status.QUEUED, Status.RETRYING]
SENT_WRITE_TRIES = 3


def due_jobs(now: dt.datetime) -> QuerySet[EmailJob]:
    """Jobs a worker may claim now."""
    return EmailJob.objects.filter(status__in=WAITING, next_attempt_at__lte=now).filter(
        Q(not_before__isnull=True) | Q(not_before__lte=now)
    )


# --- Claiming ------------------------------------------------------------------------------------


def claim_many(job_ids: Iterable[int], *, now: dt.datetime | None = None) -> list[EmailJob]:
    """queued/retrying -> sending, counting an attempt, for every job of ``job_ids`` that is due
    and free; in one transaction, in id order. Jobs not returned are not due, or someone else's.

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


def _held(jobs: Iterable[EmailJob]) -> QuerySet[EmailJob]:
    """The jobs, only while they are still ours: sending under the attempt we claimed them with."""
    held = Q(pk__in=[])
    for job in jobs:
        held |= Q(pk=job.pk, attempts=job.attempts)
    return EmailJob.objects.filter(held, status=Status.SENDING)


# --- Outcomes of a claimed job -----------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    """One call to one provider for one job, as the attempt log keeps it."""

    job: EmailJob
    provider: Provider | None
    started_at: dt.datetime
    duration_ms: int
    outcome: str
    error_code: str = ""
    error_message: str = ""
    message_id: str = ""  # the provider's id for an accepted message

    def row(self) -> DeliveryAttempt:
        return DeliveryAttempt(
            job=self.job,
            provider=self.provider,
            started_at=self.started_at,
            duration_ms=self.duration_ms,
            outcome=self.outcome,
            error_code=self.error_code,
            error_message=self.error_message[:2000],
        )


def record_attempt(attempt: Attempt) -> None:
    """Append a call that did not deliver; the job's next state is the caller's decision."""
    attempt.row().save()


def record_accepted(accepted: Sequence[Attempt]) -> bool:
    """sending -> sent for the accepted attempts' jobs, with their attempts appended, atomically;
    then read the halt switch, and return whether sending is halted now.

    The send path uses that reading as its check before the next provider call instead of a
    query of its own (``delivery.freshness``). On PostgreSQL all of it is one statement, one
    round trip however many jobs; other databases get the same from a transaction.
    """
    for _ in range(SENT_WRITE_TRIES - 1):
        try:
            return _write_accepted(accepted)
        except (OperationalError, InterfaceError):
            # The providers have the messages: losing this write would send them again after
            # the lease. Repeating it is safe: it only matches the attempts this worker claimed.
            log.warning(
                "database connection lost recording %d job(s) as sent; retrying", len(accepted)
            )
            connection.close()
    return _write_accepted(accepted)  # the last try raises


def _write_accepted(accepted: Sequence[Attempt]) -> bool:
    now = timezone.now()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(accepted_sql(), accepted_params(accepted, now))
            return cursor.fetchone()[0]
    calls = defaultdict(list)  # a batch call's jobs share provider and id: one UPDATE
    for a in accepted:
        calls[(a.provider, a.message_id[:255])].append(a.job)
    with transaction.atomic():
        DeliveryAttempt.objects.bulk_create(attempt.row() for attempt in accepted)
        for (provider, message_id), jobs in calls.items():
            _held(jobs).update(
                status=Status.SENT,
                provider=provider,
                provider_message_id=message_id,
                lease_expires_at=None,
                finished_at=now,
                last_error="",
            )
    return is_halted()


def mark_failed(job: EmailJob, *, error: str) -> bool:
    """sending -> failed (terminal): the message can never be sent, or retries are used up."""
    finished = {"lease_expires_at": None, "finished_at": timezone.now(), "last_error": error}
    return bool(_held([job]).update(status=Status.FAILED, **finished))


def is_too_old(job: EmailJob, now: dt.datetime) -> bool:
    return now - job.created_at >= dt.timedelta(seconds=settings.GPMAS_MAX_AGE_SECONDS)


def is_exhausted(job: EmailJob, now: dt.datetime) -> bool:
    return job.attempts >= job.max_attempts or is_too_old(job, now)


def retry_delay(attempts: int, retry_after: float | None = None) -> dt.timedelta:
    seconds = backoff_delay(
        attempts,
        base=settings.GPMAS_BACKOFF_BASE_SECONDS,
        cap=settings.GPMAS_BACKOFF_CAP_SECONDS,
        retry_after=retry_after,
    )
    return dt.timedelta(seconds=seconds)


def schedule_retry(
    job: EmailJob,
    *,
    error: str,
    retry_after: float | None = None,
    wait=event_wait.NO_WAIT,
    due_at: dt.datetime | None = None,
) -> str:
    """sending -> retrying after a backoff (or at ``due_at``, one moment for several jobs), or ->
    failed once attempts or age are used up.
    ``wait``: the outcome is unknown and the provider may still report it (``event_wait``); the
    job is not due before that, and an event meanwhile makes it sent (``record_sent_by_event``).

    Returns the status the job was left in ("" when the job was no longer ours).
    """
    now = timezone.now()
    if is_exhausted(job, now):
        reason = f"gave up after {job.attempts} attempt(s): {error}"
        return Status.FAILED if mark_failed(job, error=reason) else ""
    if due_at is None:
        due_at = now + retry_delay(job.attempts, retry_after)
    updated = _held([job]).update(
        status=Status.RETRYING,
        next_attempt_at=max(due_at, now + wait),
        lease_expires_at=None,
        dispatched_at=None,
        last_error=event_wait.waiting_note(error, wait),
    )
    return Status.RETRYING if updated else ""


def release_many(jobs: Iterable[EmailJob], *, due_at: dt.datetime, reason: str) -> int:
    """sending -> queued without counting the attempt, for claimed jobs no provider was tried
    with (halt, no provider free, the batch ran out of time); one UPDATE."""
    return _held(jobs).update(
        status=Status.QUEUED,
        attempts=F("attempts") - 1,
        next_attempt_at=due_at,
        lease_expires_at=None,
        dispatched_at=None,
        last_error=reason,
    )


def reconcile_expired_leases(*, now: dt.datetime | None = None, limit: int = 500) -> int:
    """sending jobs whose lease ran out -> retrying (or failed), with an ``unknown`` attempt.

    The worker that held the job died or hung; whether the provider got the message is unknown,
    so the attempt counts and the job is tried again (at-least-once delivery), after waiting for
    the providers' events if one that posts them could have it (``event_wait``).
    """
    now = now or timezone.now()
    expired = EmailJob.objects.filter(status=Status.SENDING, lease_expires_at__lt=now)
    jobs = list(expired.select_related("pinned_provider").order_by("lease_expires_at")[:limit])
    waits = event_wait.wait_after_lost_worker(jobs)
    count = 0
    for job in jobs:
        with transaction.atomic():
            error = "lease expired: the worker holding it stopped"
            if schedule_retry(job, error=error, wait=waits[job.pk]):
                lost = "worker lost before recording an outcome"
                started = job.lease_expires_at
                record_attempt(
                    Attempt(job, None, started, 0, Outcome.UNKNOWN, "lease_expired", lost)
                )
                count += 1
    return count


def record_sent_by_event(job_id: int, *, message_id: str, provider_kind: str = "") -> bool:
    """sending/retrying/queued (tried at least once) -> sent: a provider's event for the job
    shows that an attempt whose outcome was unknown delivered it. No provider is called again;
    a worker still holding the job finds it no longer ``_held``. Whether the job moved.

    The job's provider is the one of that kind its latest attempt named, if any (a killed
    worker's attempt names none), so the provider's bounce and complaint rates count it."""
    tried = EmailJob.objects.filter(
        pk=job_id, status__in=[*WAITING, Status.SENDING], attempts__gt=0
    )
    sent = {"status": Status.SENT, "lease_expires_at": None, "finished_at": timezone.now()}
    if message_id:
        sent["provider_message_id"] = message_id[:255]
    if provider_kind:  # in the same UPDATE: most events find the job sent already
        attempts = DeliveryAttempt.objects.filter(job=OuterRef("pk"), provider__kind=provider_kind)
        latest = Subquery(attempts.order_by("-id").values("provider_id")[:1])
        sent["provider_id"] = Coalesce(latest, F("provider_id"))
    return bool(tried.update(**sent, last_error=""))


# --- Waiting jobs --------------------------------------------------------------------------------


def cancel(jobs: QuerySet[EmailJob], *, reason: str) -> int:
    """queued/retrying -> cancelled. A job already sending finishes; terminal ones stay."""
    return jobs.filter(status__in=WAITING).update(
        status=Status.CANCELLED, finished_at=timezone.now(), last_error=reason
    )


def suppress_waiting(jobs: QuerySet[EmailJob], *, reason: str) -> int:
    """queued/retrying -> suppressed: their address was suppressed after they were written."""
    return jobs.filter(status__in=WAITING).update(
        status=Status.SUPPRESSED, finished_at=timezone.now(), last_error=reason
    )


def make_due_now(jobs: QuerySet[EmailJob]) -> int:
    """Waiting jobs become due at once (admin "retry now", resume after a halt)."""
    now = timezone.now()
    return jobs.filter(status__in=WAITING).update(next_attempt_at=now, dispatched_at=None)


def stamp_dispatched(job_ids: Iterable[int], *, now: dt.datetime) -> None:
    EmailJob.objects.filter(pk__in=list(job_ids)).update(dispatched_at=now)


def clear_dispatched(job_ids: Iterable[int]) -> None:
    EmailJob.objects.filter(pk__in=list(job_ids), status__in=WAITING).update(dispatched_at=None)
