"""What becomes of the jobs of a provider call that failed (docs/architecture.md, "Sending")."""

from __future__ import annotations

from typing import TYPE_CHECKING

from delivery import event_wait, outbox
from delivery.calls import Call
from delivery.models import EmailJob
from delivery.providers import ErrorClass
from delivery.sendings import Sending

if TYPE_CHECKING:
    from delivery.batch_send import BatchSend


def after_failure(batch: BatchSend, sending: Sending, done: Call) -> None:
    """Hand the jobs of ``sending``, whose call ``done`` failed, on."""
    error, error_class = f"{done.provider.name}: {done.error}", done.error.error_class
    wait = event_wait.wait_after_call(done.provider) if error_class == ErrorClass.UNKNOWN else None
    if wait:
        for job in sending.jobs:  # the provider may have them, and will say so: wait
            batch.results[job.pk] = outbox.schedule_retry(job, error=error, wait=wait)
    elif sending.batch and error_class == ErrorClass.UNKNOWN:
        # The provider may have them: each goes on alone, never back to untried.
        batch.ready.extend(Sending([job], failures=[done]) for job in sending.jobs)
    elif sending.batch:
        batch.untried.extend(sending.jobs)  # certainly not taken: the one-by-one path
    elif error_class == ErrorClass.RECIPIENT_REJECTED:
        outbox.mark_failed(sending.jobs[0], error=error)
        batch.results[sending.jobs[0].pk] = EmailJob.Status.FAILED
    else:
        sending.failures.append(done)
        batch.ready.appendleft(sending)  # on to its next provider, before new jobs
