"""What a provider call that answered means for its jobs (``BatchSend.finish``): every job sent,
or, when the provider answered message by message (SES SendBulkEmail, an SMTP call of several
messages), each job its own outcome.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from delivery import failed_calls, outbox
from delivery.calls import Call, refund_quota
from delivery.models import EmailJob
from delivery.providers import ErrorClass
from delivery.sendings import Sending

if TYPE_CHECKING:
    from delivery.batch_send import BatchSend

Status = EmailJob.Status
UNKNOWN = ErrorClass.UNKNOWN


def record_answered(batch: BatchSend, sending: Sending, done: Call) -> None:
    """The accepted jobs are sent. A message the provider refused alone was certainly not
    taken: it fails when the provider rejected that message (as a single send would), and
    otherwise goes back to untried, to be sent alone like the jobs of a refused batch call (the
    put-back rule). A message whose outcome is unknown (SMTP: the session lost after its data)
    goes on as a single call with that outcome would. Quota is given back for the certainly
    refused ones."""
    parts = list(zip(sending.jobs, done.per_message(len(sending.jobs)), strict=True))
    accepted = [part.attempt(job) for job, part in parts if part.error is None]
    refused = [(job, part) for job, part in parts if part.error is not None]
    if accepted:
        batch.halt.read_with(lambda: outbox.record_accepted(accepted))
        batch.results.update((attempt.job.pk, Status.SENT) for attempt in accepted)
    batch.note(sending, done)
    if not refused:
        return
    for job, part in refused:
        outbox.record_attempt(part.attempt(job))
    definite = [(job, part) for job, part in refused if part.error.error_class != UNKNOWN]
    if definite:
        refund_quota(definite[0][1], len(definite))
    for job, part in refused:
        if part.error.error_class == ErrorClass.RECIPIENT_REJECTED:
            outbox.mark_failed(job, error=f"{done.provider.name}: {part.error}")
            batch.results[job.pk] = Status.FAILED
        elif part.error.error_class == UNKNOWN:
            # The provider may have it (an SMTP session lost after its data): never untried;
            # it goes the way of a single call with that outcome.
            failed_calls.after_failure(batch, Sending([job]), part)
        else:
            batch.untried.append(job)
