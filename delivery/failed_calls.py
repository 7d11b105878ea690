"""What becomes of the jobs of a provider call that failed (docs/architecture.md, "Sending", and
its "A failed batch call"; issue #15, "Provider limits still hold with batches").

A single job goes on to its next provider at once, unless its recipient was rejected. A batch
call carries up to 1,000 messages: turning its failure into as many single calls at once would
give the provider that just failed the burst the batch call spared it, and after an unknown
outcome would send every message again at once. So a failed batch call's jobs:

- after a definite failure (transient, rate limited, provider error) go on alone to the *other*
  providers (``Sending.failures`` keeps the failed one out of their ranking, and out of its
  speed baseline); when no other provider can take a message now, the batch is retried together;
- after an unknown outcome (the provider may have every message) are retried together: never sent
  again one by one, at once, elsewhere; and that retry prefers the other providers
  (``lost_answers``), so a provider that keeps taking messages after the timeout does not get
  each of them once per attempt;
- after a recipient rejection (one address is bad, the call does not say which) go back to the
  untried jobs and one by one, which finds it.

Retried together: each job ``retrying``, its attempt counted, all due at one moment drawn once for
the batch in the upper half of the usual backoff (``shared_backoff``), so the drain brings them
back together and they are batched again. An unknown outcome at a provider that posts events
waits for them first, single call or batch (``delivery.event_wait``).
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from django.conf import settings
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from delivery import event_wait, outbox
from delivery.calls import Call
from delivery.models import DeliveryAttempt, EmailJob, Provider
from delivery.providers import ErrorClass
from delivery.sendings import Sending
from reliability.retry import backoff_delay

if TYPE_CHECKING:
    from delivery.batch_send import BatchSend


def after_failure(batch: BatchSend, sending: Sending, done: Call) -> None:
    """Hand the jobs of ``sending``, whose call ``done`` failed, on (see the module)."""
    error, error_class = f"{done.provider.name}: {done.error}", done.error.error_class
    wait = event_wait.wait_after_call(done.provider) if error_class == ErrorClass.UNKNOWN else None
    if wait:
        for job in sending.jobs:  # the provider may have them, and will say so: wait
            batch.results[job.pk] = outbox.schedule_retry(job, error=error, wait=wait)
    elif sending.batch and error_class == ErrorClass.RECIPIENT_REJECTED:
        batch.untried.extend(sending.jobs)  # certainly not taken: the one-by-one path
    elif sending.batch and (error_class == ErrorClass.UNKNOWN or not others_can_take(batch, done)):
        batch.results.update(retry_together(sending.jobs, done))
    elif sending.batch:
        batch.ready.extend(Sending([job], failures=[done]) for job in sending.jobs)
    elif error_class == ErrorClass.RECIPIENT_REJECTED:
        outbox.mark_failed(sending.jobs[0], error=error)
        batch.results[sending.jobs[0].pk] = EmailJob.Status.FAILED
    else:
        sending.failures.append(done)
        batch.ready.appendleft(sending)  # on to its next provider, before new jobs


def lost_answers(jobs: Iterable[EmailJob]) -> dict[int, frozenset[int]]:
    """Job id -> the provider whose answer to the job's last call was lost (unknown outcome): it
    may have the message, so the job's next send prefers the others. One query, and none for a
    batch of first tries."""
    retried = [job.pk for job in jobs if job.attempts > 1]
    if not retried:
        return {}
    attempts = DeliveryAttempt.objects.filter(job_id=OuterRef("job_id")).order_by("-id")
    lost = DeliveryAttempt.objects.filter(
        job_id__in=retried,
        id=Subquery(attempts.values("id")[:1]),
        outcome=DeliveryAttempt.Outcome.UNKNOWN,
        provider__isnull=False,
    )
    return {
        job: frozenset({provider}) for job, provider in lost.values_list("job_id", "provider_id")
    }


def others_can_take(batch: BatchSend, done: Call) -> bool:
    """A provider other than the one that failed can take a message now."""
    failed: Provider = done.provider
    selection, _ = batch.select(pinned=None, excluded=frozenset({failed.pk}))
    return bool(selection.providers)


def retry_together(jobs: Sequence[EmailJob], done: Call) -> dict[int, str]:
    """Schedule every job for one shared retry; their statuses."""
    error = f"{done.provider.name}: {done.error}"
    due_at = timezone.now() + shared_backoff(jobs, retry_after=done.error.retry_after)
    return {job.pk: outbox.schedule_retry(job, error=error, due_at=due_at) for job in jobs}


def shared_backoff(
    jobs: Sequence[EmailJob], *, retry_after: float | None = None, rng=random.random
) -> dt.timedelta:
    """One backoff for all of ``jobs``, in the upper half of ``outbox.retry_delay``'s range. One
    draw, so they come back as one batch; the upper half, because a full jitter near 0 would
    send all of them again at once."""
    seconds = backoff_delay(
        max(job.attempts for job in jobs),
        base=settings.GPMAS_BACKOFF_BASE_SECONDS,
        cap=settings.GPMAS_BACKOFF_CAP_SECONDS,
        retry_after=retry_after,
        rng=lambda: 0.5 + rng() / 2,
    )
    return dt.timedelta(seconds=seconds)
