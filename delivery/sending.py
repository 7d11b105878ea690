"""The send path (DESIGN.md §5, Send): claim, check the halt, try providers in order, record."""

from __future__ import annotations

import datetime as dt
import functools
import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass

import redis
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection
from django.utils import timezone

from delivery import outbox, provider_state, ranking
from delivery.message import JOB_HEADER, OutgoingMessage
from delivery.models import DeliveryAttempt, EmailJob, Provider
from delivery.providers import Adapter, ErrorClass, ProviderConfigError, SendError, build_adapter
from reliability.halt import is_halted

log = logging.getLogger(__name__)
Outcome = DeliveryAttempt.Outcome
# Redis carries the broker too: while it is down no job moves, so retrying soon costs nothing.
REDIS_DOWN_RETRY = dt.timedelta(seconds=5)
BUSY_RETRY = dt.timedelta(seconds=1)
SENT_WRITE_TRIES = 3
HALTED = "halted"

# Adapters live as long as the worker process, keyed by the provider row's version, so their
# connections (SMTP sessions, HTTP keep-alive) are reused from one batch to the next.
_adapters: dict[tuple[int, float], Adapter] = {}


def adapter_for(provider: Provider) -> Adapter:
    key = (provider.pk, provider.updated_at.timestamp())
    if key not in _adapters:
        for stale in [k for k in _adapters if k[0] == provider.pk]:
            _adapters.pop(stale).close()
        _adapters[key] = build_adapter(provider)
    return _adapters[key]


def close_adapters() -> None:
    for adapter in _adapters.values():
        adapter.close()


def message_for(job: EmailJob) -> OutgoingMessage:
    return OutgoingMessage(
        to_email=job.to_email,
        from_email=job.from_email,
        subject=job.subject,
        text_body=job.text_body,
        html_body=job.html_body,
        headers={**job.headers, JOB_HEADER: str(job.pk)},
        ics=job.ics,
    )


@dataclass
class Tried:
    provider: Provider
    error: SendError


def jobs_send(*, job_ids: list[int]) -> dict[int, str]:
    """Send a batch: one halt check, one claim and one read of the provider rows for it all.

    Returns the status each job was left in ("halted" or "not-claimed" for jobs not claimed).
    Claimed jobs whose turn does not come (halt, Redis down, the batch ran out of time) go back
    to the queue without counting an attempt.
    """
    if is_halted():
        # Not claimed: the jobs wait, and the drain that runs on resume publishes them again.
        outbox.clear_dispatched(job_ids)
        return dict.fromkeys(job_ids, HALTED)
    results = dict.fromkeys(job_ids, "not-claimed")
    untried = deque(outbox.claim_many(job_ids))
    if not untried:
        return results
    switch = HaltSwitch()
    ranker = ranking.BatchRanking(Provider.objects.filter(enabled=True))
    # Stop well inside the lease: past it, the reconciler may have handed a job to another worker.
    stop_at = time.monotonic() + settings.GPMAS_JOB_LEASE_SECONDS / 2
    due_again, reason = timezone.now(), "the batch ended before its turn"
    try:
        _send_together(untried, ranker, switch, results, stop_at=stop_at)
        while untried and time.monotonic() < stop_at:
            # Out of ``untried`` before its call: once a provider may have it, the job is never
            # put back as untried (a failed write leaves it to its lease, and the reconciler).
            job = untried.popleft()
            try:
                results[job.pk] = _try_providers(job, ranker, switch)
            except redis.RedisError:
                untried.appendleft(job)  # ranking and reservation come before any call
                raise
            if results[job.pk] == HALTED:
                break
    except redis.RedisError as exc:
        # Provider state, quotas and probes live in Redis; without them no call is safe.
        log.warning("%d job(s) wait: provider state unavailable (%s)", len(untried), exc)
        due_again, reason = timezone.now() + REDIS_DOWN_RETRY, "Redis unavailable"
    finally:
        _put_back(untried, due_at=due_again, reason=reason)
        results.update((job.pk, EmailJob.Status.QUEUED) for job in untried)
        _flush_outcomes()
    return results


def _flush_outcomes() -> None:
    try:
        provider_state.flush_outcomes()
    except redis.RedisError:  # lost: a few halvings of a penalty, nothing a later call won't redo
        log.warning("could not record the batch's last successes")


def _send_together(
    untried: deque[EmailJob],
    ranker: ranking.BatchRanking,
    switch: HaltSwitch,
    results: dict,
    *,
    stop_at: float,
) -> None:
    """Send the jobs that can share a call in one call per group, when the provider ranked first
    for this batch has a batch API (SendGrid's personalizations). Jobs sent leave ``untried``;
    the rest, and the jobs of a call that failed, go one by one after this.
    """
    free = [job for job in untried if job.pinned_provider is None]
    if len(free) < 2:
        return
    selection = ranker.select()
    if not selection.providers:
        return
    provider = selection.providers[0]
    if selection.views[provider.pk].circuit != provider_state.CLOSED:
        return  # a recovering provider's probe is one message
    try:
        adapter = adapter_for(provider)
    except ProviderConfigError:
        return
    if adapter.max_batch < 2:
        return
    groups = defaultdict(list)
    for job in free:
        message = message_for(job)
        key = adapter.batch_key(message)
        if key is not None:
            groups[key].append((job, message))
    for group in groups.values():
        for start in range(0, len(group), adapter.max_batch):
            chunk = group[start : start + adapter.max_batch]
            if time.monotonic() >= stop_at:
                return
            if len(chunk) < 2:
                continue
            if _send_chunk(provider, chunk, switch, untried):
                results.update((job.pk, EmailJob.Status.SENT) for job, _ in chunk)
            else:
                ranker.forget()


def _send_chunk(
    provider: Provider,
    chunk: list[tuple[EmailJob, OutgoingMessage]],
    switch: HaltSwitch,
    untried: deque[EmailJob],
) -> bool:
    """One batch call for ``chunk``. False: nothing was sent (halt, no quota, the call failed),
    and the chunk's jobs are back in ``untried`` for the one-by-one path."""
    if switch.halted():
        return False
    jobs = [job for job, _ in chunk]
    grant = provider_state.reserve(provider, at=provider_state.now(), recipients=len(jobs))
    if not grant.ok:
        return False
    for job in jobs:  # a provider may have them from here on: see jobs_send
        untried.remove(job)
    messages = [message for _, message in chunk]
    started, clock = timezone.now(), time.monotonic()
    try:
        message_id, error = _call(provider, lambda adapter: adapter.send_batch(messages))
    except SoftTimeLimitExceeded:
        _timed_out(jobs, provider, started, clock, probe=grant.probe)
        raise
    if error is None:
        accepted = [
            outbox.Accepted(job, provider, message_id, started, _elapsed_ms(clock)) for job in jobs
        ]
        write = functools.partial(outbox.record_accepted_together, accepted)
        switch.leave(record_sent(write, job_ids=[job.pk for job in jobs]))
        note_outcome(provider, None, probe=grant.probe)
        return True
    for job in jobs:
        record(job, provider, started, clock, error.error_class, error)
    note_outcome(provider, error, probe=grant.probe)
    if error.error_class != ErrorClass.UNKNOWN:
        refund_quota(provider, len(jobs))
    untried.extend(jobs)
    return False


def _put_back(jobs, *, due_at: dt.datetime, reason: str) -> None:
    if not jobs:
        return
    try:
        outbox.release_many(jobs, due_at=due_at, reason=reason)
    except DatabaseError:  # their leases run out and the reconciler puts them back instead
        log.warning("could not put %d untried job(s) back", len(jobs))


def job_send(*, job_id: int) -> str:
    """Send one job if it is due and nobody else has it. Returns the status it was left in."""
    return jobs_send(job_ids=[job_id])[job_id]


class HaltSwitch:
    """The halt switch as the send path reads it: afresh before every provider call.

    The write that records an acceptance (``outbox.record_accepted``) reads the switch in the
    same round trip and leaves that reading here; the next call may use it instead of a query of
    its own if it comes at once. A reading serves one call at most, and only while it is fresh.
    """

    # Older readings are taken again: the check must stay just before the call it allows.
    FRESH_FOR_SECONDS = 0.005

    def __init__(self) -> None:
        self._reading: tuple[bool, float] | None = None

    def halted(self) -> bool:
        reading, self._reading = self._reading, None
        if reading is not None and time.monotonic() - reading[1] < self.FRESH_FOR_SECONDS:
            return reading[0]
        return is_halted()

    def leave(self, halted: bool) -> None:
        self._reading = (halted, time.monotonic())


def _try_providers(job: EmailJob, ranker: ranking.BatchRanking, switch: HaltSwitch) -> str:
    candidates = ranker.providers
    if job.pinned_provider is not None:
        candidates = [p for p in candidates if p.pk == job.pinned_provider.pk]
    selection = ranker.select(candidates)
    if not selection.providers:
        outbox.release(job, due_at=selection.retry_at, reason="no provider can take it now")
        return EmailJob.Status.QUEUED
    message = message_for(job)
    failures: list[Tried] = []
    for provider in selection.providers:
        if switch.halted():
            outbox.release(job, due_at=timezone.now(), reason="halted before sending")
            return HALTED
        grant = provider_state.reserve(provider, at=provider_state.now())
        if not grant.ok:
            ranker.forget()
            continue  # another worker took its last quota or its probe slot since we ranked
        started, clock = timezone.now(), time.monotonic()
        try:
            message_id, error = _call(provider, lambda adapter: adapter.send(message))
        except SoftTimeLimitExceeded:
            _timed_out([job], provider, started, clock, probe=grant.probe)
            raise
        if error is None:
            accepted = outbox.Accepted(job, provider, message_id, started, _elapsed_ms(clock))
            write = functools.partial(outbox.record_accepted, accepted)
            switch.leave(record_sent(write, job_ids=[job.pk]))
            note_outcome(provider, None, probe=grant.probe)
            return EmailJob.Status.SENT
        record(job, provider, started, clock, error.error_class, error)
        note_outcome(provider, error, probe=grant.probe)
        ranker.forget()
        if error.error_class != ErrorClass.UNKNOWN:
            refund_quota(provider)  # it did not take the message
        if error.error_class == ErrorClass.RECIPIENT_REJECTED:
            outbox.mark_failed(job, error=f"{provider.name}: {error}")
            return EmailJob.Status.FAILED
        failures.append(Tried(provider, error))
    if not failures:
        if not selection.fresh:  # ranked on state read moments ago: rank once more on the latest
            return _try_providers(job, ranker, switch)
        outbox.release(job, due_at=timezone.now() + BUSY_RETRY, reason="providers busy")
        return EmailJob.Status.QUEUED
    return outbox.schedule_retry(
        job, error=summarize(failures), retry_after=common_retry_after(failures)
    )


def _call(provider: Provider, send: Callable[[Adapter], str]) -> tuple[str, SendError | None]:
    """One provider call: its message id, or the failure as a SendError (a time limit is raised)."""
    try:
        return send(adapter_for(provider)), None
    except SoftTimeLimitExceeded:
        raise
    except SendError as exc:
        return "", exc
    except ProviderConfigError as exc:
        return "", SendError(ErrorClass.PROVIDER_ERROR, str(exc), code="config")
    except Exception as exc:  # an adapter bug: the call may have gone out
        log.exception("provider %s raised unexpectedly", provider.name)
        return "", SendError(ErrorClass.UNKNOWN, f"{type(exc).__name__}: {exc}", code="adapter")


def _timed_out(jobs: list[EmailJob], provider, started, clock, *, probe: bool) -> None:
    """The task ran out of time inside a provider call: the outcome is unknown. Put the jobs back
    for a retry now rather than at lease expiry; the caller ends the batch, and its untried jobs
    are put back too."""
    timed_out = SendError(ErrorClass.UNKNOWN, "task time limit", code="time_limit")
    for job in jobs:
        record(job, provider, started, clock, ErrorClass.UNKNOWN, timed_out)
        outbox.schedule_retry(job, error=f"{provider.name}: task time limit during the call")
    note_outcome(provider, timed_out, probe=probe)


def record_sent(write: Callable[[], bool], *, job_ids: list[int]) -> bool:
    """Write down an acceptance, reconnecting if the database connection just dropped.

    The provider has the message: losing this write would send it again after the lease. The
    write is safe to repeat, because it only matches the attempts this worker claimed. Returns
    the halt switch as read with the write.
    """
    for _ in range(SENT_WRITE_TRIES - 1):
        try:
            return write()
        except (OperationalError, InterfaceError):
            log.warning("database connection lost recording job(s) %s as sent; retrying", job_ids)
            connection.close()
    return write()  # the last try raises


def _elapsed_ms(clock: float) -> int:
    return int((time.monotonic() - clock) * 1000)


def refund_quota(provider: Provider, recipients: int = 1) -> None:
    try:
        provider_state.refund(provider, at=provider_state.now(), recipients=recipients)
    except redis.RedisError:  # the count errs on the safe side: one recipient too many
        log.warning("could not refund quota of provider %s", provider.name)


def note_outcome(provider: Provider, error: SendError | None, *, probe: bool) -> None:
    """Feed the outcome to the provider's penalty and circuit (DESIGN.md §6)."""
    if error is None and not probe:
        provider_state.record_success_later(provider, at=provider_state.now())
        return
    outcome = error.error_class if error else Outcome.ACCEPTED
    try:
        provider_state.record_outcome(
            provider,
            outcome,
            at=provider_state.now(),
            probe=probe,
            retry_after=error.retry_after if error else None,
            error=f"{error.code} {error}" if error else "",
        )
    except redis.RedisError:
        log.warning("could not record %s for provider %s", outcome, provider.name)


def record(job, provider, started, clock, outcome: str, error: SendError | None = None) -> None:
    DeliveryAttempt.objects.create(
        job=job,
        provider=provider,
        started_at=started,
        duration_ms=_elapsed_ms(clock),
        outcome=outcome,
        error_code=error.code if error else "",
        error_message=str(error)[:2000] if error else "",
    )


def summarize(failures: list[Tried]) -> str:
    return "; ".join(f"{t.provider.name}: {t.error.error_class} {t.error}" for t in failures)[:4000]


def common_retry_after(failures: list[Tried]) -> float | None:
    """When every provider said "later", wait at least until the first of them allows it."""
    waits = [t.error.retry_after for t in failures]
    if not waits or any(w is None for w in waits):
        return None
    return min(waits)
