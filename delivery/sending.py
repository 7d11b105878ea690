"""The send path (docs/architecture.md, "Sending"): a batch of claimed jobs to the providers.

One Celery message carries up to ``GPMAS_DRAIN_BATCH_SIZE`` job ids. ``jobs_send`` checks the
halt switch once, claims the jobs in one transaction and hands them to a ``BatchSend``, which
tries providers for each job in ranked order until one accepts it.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import deque
from collections.abc import Sequence

import redis
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

from delivery import outbox, provider_state, ranking
from delivery.batching import Chunk, chunks_for_batch_calls
from delivery.calls import Call, message_for, note_outcome, refund_quota
from delivery.connections import adapter_for
from delivery.freshness import DeferredSuccesses, HaltCheck, ProviderStateCache
from delivery.models import EmailJob, Provider
from delivery.providers import ErrorClass, ProviderConfigError, SendError
from reliability.halt import is_halted

log = logging.getLogger(__name__)
Status = EmailJob.Status
HALTED, NOT_CLAIMED = "halted", "not-claimed"
# Redis carries the broker too: while it is down no job moves, so retrying soon costs nothing.
REDIS_DOWN_RETRY = dt.timedelta(seconds=5)
BUSY_RETRY = dt.timedelta(seconds=1)
TIME_LIMIT = SendError(ErrorClass.UNKNOWN, "task time limit during the call", code="time_limit")


def jobs_send(*, job_ids: Sequence[int]) -> dict[int, str]:
    """Send a batch of jobs; the status each was left in ("halted" or "not-claimed" for jobs
    that were not claimed: halted before the claim, or not due, or someone else's)."""
    if is_halted():
        # Not claimed: the jobs wait, and the drain that runs on resume publishes them again.
        outbox.clear_dispatched(job_ids)
        return dict.fromkeys(job_ids, HALTED)
    results = dict.fromkeys(job_ids, NOT_CLAIMED)
    jobs = outbox.claim_many(job_ids)
    if jobs:
        # Stop starting calls well inside the lease: past it, the drain may hand a job on.
        deadline = time.monotonic() + settings.GPMAS_JOB_LEASE_SECONDS / 2
        providers = Provider.objects.filter(enabled=True)
        results.update(BatchSend(jobs, providers, deadline=deadline).run())
    return results


class BatchSend:
    """One batch of claimed jobs on its way to the providers.

    It owns what its steps share: the jobs not tried yet, what became of the others, the
    deadline for starting calls, and the batch's readings of the halt switch and of the
    providers' live state (``delivery.freshness`` says how long each may be reused).

    The put-back rule: a job leaves ``untried`` right before the first call that could deliver
    it. Whatever is untried when the batch ends goes back to the queue without counting an
    attempt. A job that left ``untried`` has its outcome written; if even that write failed,
    its lease brings it back later with an ``unknown`` attempt. A job a provider may have is
    therefore never put back as untried.
    """

    def __init__(self, jobs: Sequence[EmailJob], providers, *, deadline: float) -> None:
        self.untried: deque[EmailJob] = deque(jobs)
        self.results: dict[int, str] = {}
        self.deadline = deadline
        self.halt = HaltCheck()
        self.successes = DeferredSuccesses()
        self.state = ProviderStateCache(providers, self.successes)

    def run(self) -> dict[int, str]:
        put_back_at, reason = timezone.now(), "the batch ended before its turn"
        try:
            self.send_in_batch_calls()
            while self.untried and not self.out_of_time():
                job = self.untried.popleft()
                try:
                    self.results[job.pk] = self.send_one(job)
                except redis.RedisError:
                    self.untried.appendleft(job)  # ranking and reservations come before calls
                    raise
                if self.results[job.pk] == HALTED:
                    break
        except redis.RedisError as exc:
            # Provider state, quotas and probes live in Redis; without them no call is safe.
            log.warning("%d job(s) wait: provider state unavailable (%s)", len(self.untried), exc)
            put_back_at, reason = timezone.now() + REDIS_DOWN_RETRY, "Redis unavailable"
        finally:
            self.put_back_untried(due_at=put_back_at, reason=reason)
            if not self.successes.write_now():
                log.warning("could not record the batch's last successes")
        return self.results

    def out_of_time(self) -> bool:
        return time.monotonic() >= self.deadline

    def put_back_untried(self, *, due_at: dt.datetime, reason: str) -> None:
        if not self.untried:
            return
        self.results.update((job.pk, Status.QUEUED) for job in self.untried)
        try:
            outbox.release_many(self.untried, due_at=due_at, reason=reason)
        except DatabaseError:  # their leases run out and the reconciler puts them back instead
            log.warning("could not put %d untried job(s) back", len(self.untried))

    # --- One job, provider after provider ------------------------------------------------------

    def send_one(self, job: EmailJob) -> str:
        """Try the ranked providers for ``job`` until one takes it; the status it was left in."""
        failures: list[Call] = []
        refusals: list[str] = []
        for _ in range(2):  # a second round only when the first ranked on reused state
            selection, fresh = self.select(pinned=job.pinned_provider)
            if not selection.providers:
                reason = "no provider can take it now"
                outbox.release_many([job], due_at=selection.retry_at, reason=reason)
                return Status.QUEUED
            for provider in selection.providers:
                status = self.try_provider(job, provider, failures, refusals)
                if status:
                    return status
            if failures or fresh:
                break
        if failures:
            retry_after = common_retry_after(failures)
            return outbox.schedule_retry(job, error=summarize(failures), retry_after=retry_after)
        busy = f"providers busy ({'; '.join(refusals)})"
        outbox.release_many([job], due_at=timezone.now() + BUSY_RETRY, reason=busy)
        return Status.QUEUED

    def select(self, *, pinned: Provider | None) -> tuple[ranking.Selection, bool]:
        """Rank the batch's providers (only ``pinned``, if given); also whether the state it
        ranked on was read just now."""
        at = provider_state.now()
        views, fresh = self.state.views(at=at)
        candidates = self.state.providers
        if pinned is not None:
            candidates = [p for p in candidates if p.pk == pinned.pk]
        return ranking.select(candidates, at=at, views=views), fresh

    def try_provider(
        self, job: EmailJob, provider: Provider, failures: list[Call], refusals: list[str]
    ) -> str:
        """One provider for one job: "" to go on with the next provider, else the job's status.
        A failed call is appended to ``failures``, a refused reservation to ``refusals``."""
        if self.halt.halted():
            outbox.release_many([job], due_at=timezone.now(), reason="halted before sending")
            return HALTED
        grant = provider_state.reserve(provider, at=provider_state.now())
        if not grant.ok:
            # Another worker took its last quota or its probe slot since this batch ranked.
            self.state.forget()
            refusals.append(f"{provider.name}: {grant.refused_because}")
            return ""
        message = message_for(job)
        done = Call(provider)
        try:
            done.make(lambda adapter: adapter.send(message))
        except SoftTimeLimitExceeded:
            self.timed_out([job], done, probe=grant.probe)
            raise
        if done.error is None:
            self.halt.remember(outbox.record_accepted([done.attempt(job)]))
            note_outcome(done, probe=grant.probe, successes=self.successes)
            return Status.SENT
        outbox.record_attempt(done.attempt(job))
        note_outcome(done, probe=grant.probe, successes=self.successes)
        self.state.forget()
        refund_quota(done)
        if done.error.error_class == ErrorClass.RECIPIENT_REJECTED:
            outbox.mark_failed(job, error=f"{provider.name}: {done.error}")
            return Status.FAILED
        failures.append(done)
        return ""

    def timed_out(self, jobs: list[EmailJob], done: Call, *, probe: bool) -> None:
        """The task ran out of time inside a provider call: the outcome is unknown. Retry the
        jobs now rather than at lease expiry; the batch ends, and its untried jobs go back."""
        done.finish(TIME_LIMIT)
        for job in jobs:
            outbox.record_attempt(done.attempt(job))
            outbox.schedule_retry(job, error=f"{done.provider.name}: {TIME_LIMIT}")
        note_outcome(done, probe=probe, successes=self.successes)

    # --- Several jobs in one call (providers with a batch API) --------------------------------

    def send_in_batch_calls(self) -> None:
        """Jobs that can share a call go to the provider ranked first for the batch, when it has
        a batch API (SendGrid's personalizations), one call per chunk. Jobs of a call that
        failed stay untried, for the one-by-one path."""
        free = [job for job in self.untried if job.pinned_provider is None]
        provider = self.batch_provider() if len(free) >= 2 else None
        if provider is None:
            return
        for chunk in chunks_for_batch_calls(adapter_for(provider), free, message_for):
            if self.out_of_time():
                return
            if not self.send_chunk(provider, chunk):
                self.state.forget()

    def batch_provider(self) -> Provider | None:
        """The provider ranked first now, if its circuit is closed (a recovering provider's
        probe is one message) and it can take several messages in one call."""
        selection, _ = self.select(pinned=None)
        if not selection.providers:
            return None
        first = selection.providers[0]
        if selection.views[first.pk].circuit != provider_state.CLOSED:
            return None
        try:
            return first if adapter_for(first).max_batch >= 2 else None
        except ProviderConfigError:
            return None

    def send_chunk(self, provider: Provider, chunk: Chunk) -> bool:
        """One call for the chunk's jobs; False when it did not send them (halt, no quota, a
        failed call), and they are untried again."""
        if self.halt.halted():
            return False
        jobs = [job for job, _ in chunk]
        grant = provider_state.reserve(provider, at=provider_state.now(), recipients=len(jobs))
        if not grant.ok:
            return False
        for job in jobs:  # a provider may have them from here on: see the put-back rule
            self.untried.remove(job)
        messages = [message for _, message in chunk]
        done = Call(provider)
        try:
            done.make(lambda adapter: adapter.send_batch(messages))
        except SoftTimeLimitExceeded:
            self.timed_out(jobs, done, probe=grant.probe)
            raise
        if done.error is None:
            self.halt.remember(outbox.record_accepted([done.attempt(job) for job in jobs]))
            note_outcome(done, probe=grant.probe, successes=self.successes)
            self.results.update((job.pk, Status.SENT) for job in jobs)
            return True
        for job in jobs:
            outbox.record_attempt(done.attempt(job))
        note_outcome(done, probe=grant.probe, successes=self.successes)
        refund_quota(done, len(jobs))
        self.untried.extend(jobs)
        return False


def summarize(failures: list[Call]) -> str:
    text = "; ".join(f"{c.provider.name}: {c.error.error_class} {c.error}" for c in failures)
    return text[:4000]


def common_retry_after(failures: list[Call]) -> float | None:
    """When every provider said "later", wait at least until the first of them allows it."""
    waits = [c.error.retry_after for c in failures]
    if not waits or any(w is None for w in waits):
        return None
    return min(waits)
