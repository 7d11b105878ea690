"""One job, or the jobs of one batch call, between its provider calls (``delivery.sending``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.utils import timezone

from delivery import outbox, provider_state
from delivery.calls import Call, message_for
from delivery.message import OutgoingMessage
from delivery.models import EmailJob, Provider
from delivery.provider_state import Grant

if TYPE_CHECKING:
    from delivery.sending import BatchSend

Status = EmailJob.Status
BUSY_RETRY = dt.timedelta(seconds=1)


@dataclass
class Sending:
    jobs: list[EmailJob]
    batch: bool = False  # one call for all its jobs, to ``candidates[0]`` only
    candidates: list[Provider] | None = None  # ranked providers left to try; None: not ranked
    ranked_fresh: bool = False  # ranked on state read just now, not reused
    reranked: bool = False
    retry_at: dt.datetime | None = None  # the last ranking found no provider: when one can
    slow: set[int] = field(default_factory=set)  # of its candidates, those too slow to share
    deferred: set[int] = field(default_factory=set)  # put last once, for the bulkhead
    shares: dict[int, float] = field(default_factory=dict)  # of the weights, among candidates
    failures: list[Call] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    grant: Grant | None = None
    call: Call | None = None
    messages: list[OutgoingMessage] = field(default_factory=list)
    # The provider this job drew when its batch was split (batching.batch_sendings): tried
    # first if the ranking at call time still offers it and it is not slow.
    drawn: int | None = None
    avoided: frozenset[int] | None = None  # tried only if no other provider can take it

    def __post_init__(self) -> None:
        self.messages = self.messages or [message_for(job) for job in self.jobs]

    @property
    def job_ids(self) -> list[int]:
        return [job.pk for job in self.jobs]

    def next_provider(self, batch: BatchSend) -> Provider | None:
        """The next provider to try, ranking first if not ranked yet. When every provider of a
        ranking made on reused state refused the reservation, rank once more on fresh state."""
        if self.candidates is None:
            self.rank(batch)
        stale = self.refusals and not self.failures and not self.ranked_fresh
        if not self.candidates and not self.batch and stale and not self.reranked:
            self.reranked = True
            self.rank(batch)
        return self.candidates.pop(0) if self.candidates else None

    def defer(self, provider: Provider, *, full: bool) -> bool:
        """Put ``provider`` after the other candidates when it holds its full share of the
        worker's slots (once: if nobody else takes the message, it still may)."""
        if not full or not self.candidates or provider.pk in self.deferred:
            return False
        self.deferred.add(provider.pk)
        self.candidates.append(provider)
        return True

    def rank(self, batch: BatchSend) -> None:
        # A provider that failed this job is not tried again in this batch: after a failed
        # batch call its messages must not go back to it one by one, at once.
        failed = frozenset(call.provider.pk for call in self.failures)
        selection, self.ranked_fresh = batch.select(
            pinned=self.jobs[0].pinned_provider,
            excluded=failed,
            avoided=self.avoided or frozenset(),
        )
        self.candidates = list(selection.providers)
        self.retry_at = selection.retry_at
        self.slow = selection.slow
        self.shares = selection.shares
        drawn = [p for p in self.candidates if p.pk == self.drawn and p.pk not in self.slow]
        if drawn:
            self.candidates.remove(drawn[0])
            self.candidates.insert(0, drawn[0])

    def reserve(self, provider: Provider) -> bool:
        """Take quota (and a half-open provider's probe slot) for this call; False if refused."""
        grant = provider_state.reserve(
            provider,
            at=provider_state.now(),
            recipients=len(self.jobs),
            alone=provider.pk in self.slow,  # a slow provider: one call at a time
        )
        if not grant.ok:
            self.refusals.append(f"{provider.name}: {grant.refused_because}")
            return False
        self.grant = grant
        return True

    def make_call(self) -> Call:
        """The provider call itself: run on a call slot's thread (``delivery.inflight``)."""
        messages = self.messages
        if self.batch:
            return self.call.make(lambda adapter: adapter.send_batch(messages))
        return self.call.make(lambda adapter: adapter.send(messages[0]))


def settle(sending: Sending) -> dict[int, str]:
    """A single job with no provider left to try this time: retried after a backoff when calls
    failed, else back in the queue until a provider can take it. Its status."""
    [job] = sending.jobs
    if sending.failures:
        error = summarize(sending.failures)
        status = outbox.schedule_retry(
            job, error=error, retry_after=common_retry_after(sending.failures)
        )
        return {job.pk: status}
    if sending.retry_at is not None:
        reason, due_at = "no provider can take it now", sending.retry_at
        if outbox.is_too_old(job, timezone.now()):  # waiting without attempts ends here too
            outbox.mark_failed(job, error=f"gave up: {reason}, for longer than the job may wait")
            return {job.pk: Status.FAILED}
    else:
        reason = f"providers busy ({'; '.join(sending.refusals)})"
        due_at = timezone.now() + BUSY_RETRY
    outbox.release_many([job], due_at=due_at, reason=reason)
    return {job.pk: Status.QUEUED}


def summarize(failures: list[Call]) -> str:
    text = "; ".join(f"{c.provider.name}: {c.error.error_class} {c.error}" for c in failures)
    return text[:4000]


def common_retry_after(failures: list[Call]) -> float | None:
    """When every provider said "later", wait at least until the first of them allows it."""
    waits = [c.error.retry_after for c in failures]
    if not waits or any(w is None for w in waits):
        return None
    return min(waits)
