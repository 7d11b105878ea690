"""The send path (docs/architecture.md, "Sending"): a batch of claimed jobs to the providers.

One Celery message carries up to ``GPMAS_DRAIN_BATCH_SIZE`` job ids. ``jobs_send`` checks the
halt switch once, claims the jobs in one transaction and hands them to a ``BatchSend``, which
keeps up to ``GPMAS_CALLS_IN_FLIGHT`` provider calls going (``delivery.inflight``) and tries
providers for each job in ranked order until one accepts it.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future

import redis
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

from delivery import inflight, outbox, provider_state, ranking
from delivery.batching import batch_sendings
from delivery.calls import Call, note_outcome, refund_quota
from delivery.freshness import DeferredSuccesses, HaltCheck, ProviderStateCache
from delivery.models import EmailJob, Provider
from delivery.providers import ErrorClass, SendError
from delivery.sendings import Sending, settle
from reliability.halt import is_halted

log = logging.getLogger(__name__)
Status = EmailJob.Status
HALTED, NOT_CLAIMED = "halted", "not-claimed"
# Redis carries the broker too: while it is down no job moves, so retrying soon costs nothing.
REDIS_DOWN_RETRY = dt.timedelta(seconds=5)
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
        # Past it no call starts: a call started in time ends before the task's soft time limit
        # and well inside the lease (gpmas/time_budget.py).
        deadline = time.monotonic() + settings.GPMAS_BATCH_DEADLINE_SECONDS
        providers = Provider.objects.filter(enabled=True)
        results.update(BatchSend(jobs, providers, deadline=deadline).run())
    return results


class BatchSend:
    """One batch of claimed jobs on its way to the providers.

    It owns what its steps share: the jobs not tried yet (``untried``), the jobs between two
    calls (``ready``, tried again first), the calls in flight (``running``), what became of each
    job, the deadline for starting calls, and the batch's readings of the halt switch and of the
    providers' live state (``delivery.freshness`` says how long each may be reused).

    The put-back rule: a job leaves ``untried`` right before the first call that could deliver
    it, and goes back there only after a call that certainly did not (a batch call refused with
    a definite error). Whatever is untried when the batch ends goes back to the queue without
    counting an attempt. A job whose call failed and which finds no other provider before the
    batch ends (deadline, halt, Redis down) is retried after a backoff, its attempt counted. A
    job in a call has its outcome written when the call ends; if even that write fails, its
    lease brings it back later with an ``unknown`` attempt. A job a provider may have is
    therefore never put back as untried.
    """

    def __init__(self, jobs: Sequence[EmailJob], providers, *, deadline: float) -> None:
        self.untried: deque[EmailJob] = deque(jobs)
        self.ready: deque[Sending] = deque()
        self.running: dict[Future, Sending] = {}
        self.results: dict[int, str] = {}
        self.deadline = deadline
        self.stopped = False  # halted: no further call starts
        self.halt = HaltCheck()
        self.successes = DeferredSuccesses()
        self.state = ProviderStateCache(providers, self.successes)
        self.slots = inflight.slots()

    def run(self) -> dict[int, str]:
        put_back_at, reason = timezone.now(), "the batch ended before its turn"
        try:
            self.ready.extend(batch_sendings(self))
            self.keep_calls_going()
        except redis.RedisError as exc:
            # Provider state, quotas and probes live in Redis; without them no call is safe.
            log.warning("batch stops: provider state unavailable (%s)", exc)
            put_back_at, reason = timezone.now() + REDIS_DOWN_RETRY, "Redis unavailable"
            self.finish_running()
        except SoftTimeLimitExceeded:
            self.abandon_running()
            raise
        finally:
            self.put_back(due_at=put_back_at, reason=reason)
            if not self.successes.write_now():
                log.warning("could not record the batch's last successes")
        return self.results

    def keep_calls_going(self) -> None:
        while True:
            while len(self.running) < self.slots.size and self.start_next():
                pass
            if not self.running:
                return
            for future in self.slots.wait_any(self.running):
                self.finish(future)

    def finish_running(self) -> None:
        """Let the calls in flight end and record them (their providers may have the messages)."""
        while self.running:
            for future in self.slots.wait_any(self.running):
                self.finish(future)

    def start_next(self) -> bool:
        """Start one call, a job's first or next; False when there is none to start."""
        if self.stopped or time.monotonic() >= self.deadline:
            return False
        if self.ready:
            sending = self.ready.popleft()
        elif self.untried:
            sending = Sending([self.untried.popleft()])
        else:
            return False
        try:
            self.start(sending)
        except redis.RedisError:
            if sending.failures:
                self.ready.appendleft(sending)  # a provider may have it: settled at the end
            elif not sending.batch:
                self.untried.extendleft(reversed(sending.jobs))  # no call yet: still untried
            raise
        return True

    def start(self, sending: Sending) -> None:
        """Start the next call of ``sending``, or settle it when no provider is left to try."""
        while (provider := sending.next_provider(self)) is not None:
            if self.halt.halted():
                self.stop_for_halt(sending)
                return
            if sending.reserve(provider):
                self.launch(sending, provider)
                return
            self.state.forget()  # another worker took its quota or probe slot since we ranked
        if not sending.batch:  # a batch call's jobs never left untried: they go one by one
            self.results.update(settle(sending))

    def select(self, *, pinned: Provider | None) -> tuple[ranking.Selection, bool]:
        """Rank the batch's providers (only ``pinned``, if given); also whether the state it
        ranked on was read just now."""
        at = provider_state.now()
        views, fresh = self.state.views(at=at)
        candidates = self.state.providers
        if pinned is not None:
            candidates = [p for p in candidates if p.pk == pinned.pk]
        return ranking.select(candidates, at=at, views=views), fresh

    def stop_for_halt(self, sending: Sending) -> None:
        self.stopped = True
        if sending.batch:
            return  # its jobs are still untried, and go back with the rest
        if sending.failures:  # tried already: retried after a backoff, like any failed attempt
            self.results.update(settle(sending))
            return
        self.results.update(dict.fromkeys(sending.job_ids, HALTED))
        outbox.release_many(sending.jobs, due_at=timezone.now(), reason="halted before sending")

    def launch(self, sending: Sending, provider: Provider) -> None:
        if sending.batch:
            for job in sending.jobs:  # a provider may have them from here on: the put-back rule
                self.untried.remove(job)
        self.state.call_started(provider)
        sending.call = Call(provider)
        try:
            future = self.slots.start(sending.make_call)
        except SoftTimeLimitExceeded:  # with one slot the call runs inline
            self.running[Future()] = sending
            raise
        self.running[future] = sending

    def finish(self, future: Future) -> None:
        sending = self.running.pop(future)
        done = future.result()
        self.state.call_finished(done.provider)
        if done.error is None:
            self.halt.remember(outbox.record_accepted([done.attempt(job) for job in sending.jobs]))
            self.note(sending, done)
            self.results.update(dict.fromkeys(sending.job_ids, Status.SENT))
            return
        for job in sending.jobs:
            outbox.record_attempt(done.attempt(job))
        self.note(sending, done)
        self.state.forget()
        refund_quota(done, len(sending.jobs))
        self.after_failure(sending, done)

    def after_failure(self, sending: Sending, done: Call) -> None:
        if sending.batch and done.error.error_class == ErrorClass.UNKNOWN:
            # The provider may have them: each goes on alone, never back to untried.
            self.ready.extend(Sending([job], failures=[done]) for job in sending.jobs)
        elif sending.batch:
            self.untried.extend(sending.jobs)  # certainly not taken: the one-by-one path
        elif done.error.error_class == ErrorClass.RECIPIENT_REJECTED:
            outbox.mark_failed(sending.jobs[0], error=f"{done.provider.name}: {done.error}")
            self.results[sending.jobs[0].pk] = Status.FAILED
        else:
            sending.failures.append(done)
            self.ready.appendleft(sending)  # on to its next provider, before new jobs

    def abandon_running(self) -> None:
        """The task ran out of time with calls in flight: their outcomes are unknown. Retry
        their jobs now rather than at lease expiry; the batch ends, the rest goes back."""
        for sending in self.running.values():
            done = sending.call.finish(TIME_LIMIT)
            for job in sending.jobs:
                outbox.record_attempt(done.attempt(job))
                outbox.schedule_retry(job, error=f"{done.provider.name}: {TIME_LIMIT}")
            self.note(sending, done)
        self.running.clear()

    def note(self, sending: Sending, done: Call) -> None:
        note_outcome(
            done, grant=sending.grant, messages=len(sending.jobs), successes=self.successes
        )

    def put_back(self, *, due_at: dt.datetime, reason: str) -> None:
        for sending in self.ready:
            if not sending.batch:  # tried and failed: retried after a backoff
                try:
                    self.results.update(settle(sending))
                except DatabaseError:  # its lease runs out and the reconciler retries it
                    log.warning("could not schedule job(s) %s for a retry", sending.job_ids)
        jobs = list(self.untried)
        if not jobs:
            return
        self.results.update((job.pk, Status.QUEUED) for job in jobs)
        try:
            outbox.release_many(jobs, due_at=due_at, reason=reason)
        except DatabaseError:  # their leases run out and the reconciler puts them back instead
            log.warning("could not put %d untried job(s) back", len(jobs))
