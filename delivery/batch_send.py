"""One batch of claimed jobs on its way to the providers (docs/architecture.md, "Sending"):
calls in flight, the put-back rule, and what becomes of each job (``sending.jobs_send`` runs it)."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future

import redis
from celery.exceptions import SoftTimeLimitExceeded
from django.db import DatabaseError
from django.utils import timezone

from delivery import event_wait, inflight, outbox, provider_state, ranking
from delivery.batching import batch_sendings
from delivery.call_answers import record_answered
from delivery.calls import Call, note_outcome, refund_quota
from delivery.failed_calls import after_failure, lost_answers
from delivery.freshness import DeferredSuccesses, HaltCheck, ProviderStateCache
from delivery.models import EmailJob, Provider
from delivery.providers import ErrorClass, SendError
from delivery.sendings import Sending, settle

log = logging.getLogger(__name__)
Status = EmailJob.Status
HALTED, NOT_CLAIMED, UNKNOWN = "halted", "not-claimed", ErrorClass.UNKNOWN
# Redis carries the broker too: while it is down no job moves, so retrying soon costs nothing.
REDIS_DOWN_RETRY = dt.timedelta(seconds=5)
TIME_LIMIT = SendError(UNKNOWN, "task time limit during the call", code="time_limit")


class BatchSend:
    """One batch of claimed jobs on its way to the providers.

    It owns what its steps share: the jobs not tried yet (``untried``), the jobs between two
    calls (``ready``, tried again first), the calls in flight (``running``), what became of each
    job, the deadline for starting calls, and the batch's readings of the halt switch and of the
    providers' live state (``delivery.freshness`` says how long each may be reused).

    The put-back rule: a job leaves ``untried`` right before the first call that could deliver
    it, and goes back there only after a call that certainly did not (a batch call refused for
    a recipient). Whatever is untried when the batch ends goes back to the queue without
    counting an attempt. A job whose call failed and which finds no other provider before the
    batch ends (deadline, halt, Redis down) is retried after a backoff, its attempt counted
    (``delivery.failed_calls`` says when a failed batch call's jobs are retried at once). A
    job in a call has its outcome written when the call ends; if even that write fails, its
    lease brings it back later with an ``unknown`` attempt. A job a provider may have is
    therefore never put back as untried.
    """

    def __init__(self, jobs: Sequence[EmailJob], providers, *, deadline: float) -> None:
        self.untried: deque[EmailJob] = deque(jobs)
        self.ready: deque[Sending] = deque()
        self.draws: dict[int, int] = {}  # job id -> the provider it drew (batching)
        self.avoided: dict[int, frozenset[int]] = {}
        self.running: dict[Future, Sending] = {}
        self.results: dict[int, str] = {}
        self.deadline = deadline
        self.stopped = False  # halted, or Redis down: no further call starts
        self.slot_held = False  # start_next took a slot that no call has taken over yet
        self.ending: tuple[dt.datetime, str] | None = None  # when and why untried jobs go back
        self.halt = HaltCheck()
        self.successes = DeferredSuccesses()
        self.state = ProviderStateCache(providers, self.successes)
        self.slots = inflight.slots()

    def run(self, *, hand_over: bool = False) -> dict[int, str]:
        """Send the batch. With ``hand_over`` (a worker), return once nothing is left to start
        and the last calls have run ``inflight.HAND_OVER_AFTER_SECONDS``: those are left to the
        process's finishing thread, their jobs "sending"."""
        try:
            self.avoided = lost_answers(self.untried)  # job id -> providers it prefers not
            sendings, self.draws = batch_sendings(self)
            self.ready.extend(sendings)
            if self.keep_calls_going(hand_over=hand_over and self.slots.can_hand_over):
                return self.results
        except redis.RedisError as exc:
            self.redis_down(exc)
            self.finish_running()
        except SoftTimeLimitExceeded:
            self.abandon_running()
            self.close()
            raise
        except BaseException:
            self.close()
            raise
        self.close()
        return self.results

    def keep_calls_going(self, *, hand_over: bool) -> bool:
        """Start calls while jobs wait and slots are free, record calls as they end; True when
        the batch was handed over instead."""
        idle_since = None  # when the batch last had nothing to start but calls running
        while True:
            while self.start_next():
                idle_since = None
            if self.running and hand_over and not self.startable():
                idle_since = idle_since or time.monotonic()
                wait = idle_since + inflight.HAND_OVER_AFTER_SECONDS - time.monotonic()
                if wait <= 0:
                    self.hand_over()
                    return True
                for future in self.slots.wait_any(self.running, timeout=wait):
                    self.finish(future)
            elif self.running:
                for future in self.slots.wait_any(self.running):
                    self.finish(future)
            elif self.startable():  # every slot is held by another batch's calls
                if self.slots.take(wait=1):
                    self.slots.give_back()
            else:
                return False

    def hand_over(self) -> None:
        jobs = [job for sending in self.running.values() for job in sending.jobs]
        self.results.update((job.pk, Status.SENDING) for job in jobs)
        self.successes.write_now()  # the state others rank on stays current meanwhile
        self.slots.hand_over(self)

    # --- Steps of a handed-over batch (the process's finishing thread) --------------------------

    def step(self, future: Future) -> None:
        """Record a call that ended, and start whatever can start now."""
        self.finish(future)
        self.advance()

    def advance(self) -> None:
        try:
            while self.start_next():
                pass
        except redis.RedisError as exc:
            self.redis_down(exc)

    def redis_down(self, exc: Exception) -> None:
        # Provider state, quotas and probes live in Redis; without them no call is safe.
        log.warning("batch stops: provider state unavailable (%s)", exc)
        self.stopped = True
        self.ending = (timezone.now() + REDIS_DOWN_RETRY, "Redis unavailable")

    def close(self) -> None:
        """End the batch as the put-back rule says, and write the successes still waiting."""
        due_at, reason = self.ending or (timezone.now(), "the batch ended before its turn")
        self.put_back(due_at=due_at, reason=reason)
        if not self.successes.write_now():
            log.warning("could not record the batch's last successes")

    def finish_running(self) -> None:
        """Let the calls in flight end and record them (their providers may have the messages)."""
        while self.running:
            for future in self.slots.wait_any(self.running):
                self.finish(future)

    def startable(self) -> bool:
        """A job waits for a call, and the batch may still start one."""
        in_time = not self.stopped and time.monotonic() < self.deadline
        return in_time and bool(self.ready or self.untried)

    def start_next(self) -> bool:
        """Start one job's first or next call, in a slot of its own; False when no job waits or
        no slot is free."""
        if not self.startable() or not self.slots.take():
            return False
        sending = self.ready.popleft() if self.ready else self.one_by_one(self.untried.popleft())
        self.slot_held = True  # until a call takes it over (launch)
        try:
            self.start(sending)
        except redis.RedisError:
            if sending.failures:
                self.ready.appendleft(sending)  # a provider may have it: settled at the end
            elif not sending.batch:
                self.untried.extendleft(reversed(sending.jobs))  # no call yet: still untried
            raise
        finally:
            if self.slot_held:  # a slot lost here would be lost for the process's life
                self.slots.give_back()
        return True

    def one_by_one(self, job: EmailJob) -> Sending:
        return Sending([job], drawn=self.draws.get(job.pk), avoided=self.avoided.get(job.pk))

    def start(self, sending: Sending) -> bool:
        """Start the next call of ``sending`` (True), or settle it when no provider is left to
        try, or stop at a halt (False)."""
        while (provider := sending.next_provider(self)) is not None:
            full = self.slots.full_for(provider.pk, sending.shares.get(provider.pk, 0))
            if sending.defer(provider, full=full):
                continue  # another provider first (inflight.CallSlots.bulkhead)
            if sending.reserve(provider):
                # The call starts (and is timed) here, then the halt switch is read, right
                # before the call it allows: an attempt that started after a halt committed
                # would have read it.
                sending.call = Call(provider)
                if self.halt.halted():
                    provider_state.give_back(provider, sending.grant)
                    self.stop_for_halt(sending)
                    return False
                self.launch(sending, provider)
                return True
            self.state.forget()  # another worker took its quota or probe slot since we ranked
        if not sending.batch:  # a batch call's jobs never left untried: they go one by one
            self.results.update(settle(sending))
        return False

    def select(
        self, *, pinned: Provider | None, excluded=frozenset(), avoided=frozenset()
    ) -> tuple[ranking.Selection, bool]:
        """Rank the batch's providers (only ``pinned``, if given; never the ``excluded`` ids,
        which then set no speed baseline either; the ``avoided`` ids only if no other provider
        can take the message); also whether the state it ranked on was read just now."""
        at = provider_state.now()
        views, fresh = self.state.views(at=at)
        candidates = [p for p in self.state.providers if p.pk not in excluded]
        if pinned is not None:
            candidates = [p for p in candidates if p.pk == pinned.pk]
        others = [p for p in candidates if p.pk not in avoided]
        selection = ranking.select(others, at=at, views=views)
        if avoided and not selection.providers:
            selection = ranking.select(candidates, at=at, views=views)
        return selection, fresh

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
        self.slot_held = False  # the call has it now, and gives it back when it ends
        try:
            future = self.slots.start(sending.make_call, provider.pk)
        except SoftTimeLimitExceeded:  # with one slot the call runs inline
            self.running[Future()] = sending
            raise
        self.running[future] = sending

    def finish(self, future: Future) -> None:
        sending = self.running.pop(future)
        done = future.result()
        self.state.call_finished(done.provider)
        if done.error is None:
            record_answered(self, sending, done)
            return
        for job in sending.jobs:
            outbox.record_attempt(done.attempt(job))
        self.note(sending, done)
        self.state.forget()
        refund_quota(done, len(sending.jobs))
        after_failure(self, sending, done)

    def abandon_running(self) -> None:
        """The task ran out of time with calls in flight: their outcomes are unknown. Retry
        their jobs now rather than at lease expiry; the batch ends, the rest goes back."""
        for sending in self.running.values():
            done = sending.call.finish(TIME_LIMIT)
            wait = event_wait.wait_after_call(done.provider)
            for job in sending.jobs:
                outbox.record_attempt(done.attempt(job))
                outbox.schedule_retry(job, error=f"{done.provider.name}: {TIME_LIMIT}", wait=wait)
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
