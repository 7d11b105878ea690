"""The send path (DESIGN.md §5, Send): claim, check the halt, try providers in order, record."""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass

import redis
from celery.exceptions import SoftTimeLimitExceeded
from django.db import InterfaceError, OperationalError, connection, transaction
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

# Adapters live as long as the worker process, keyed by the provider row's version, so HTTP
# sessions are reused; connections that must not idle (SMTP) are closed after each batch.
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


def jobs_send(*, job_ids: list[int]) -> None:
    try:
        for job_id in job_ids:
            job_send(job_id=job_id)
    finally:
        close_adapters()


def job_send(*, job_id: int) -> str:
    """Send one job if it is due and nobody else has it. Returns the status it was left in."""
    if is_halted():
        # Not claimed: the job waits, and the drain that runs on resume publishes it again.
        outbox.clear_dispatched([job_id])
        return "halted"
    job = outbox.claim(job_id)
    if job is None:
        return "not-claimed"
    try:
        return _try_providers(job)
    except redis.RedisError as exc:
        # Provider state, quotas and probes live in Redis; without them no call is safe.
        log.warning("job %s waits: provider state unavailable (%s)", job.pk, exc)
        outbox.release(job, due_at=timezone.now() + REDIS_DOWN_RETRY, reason="Redis unavailable")
        return EmailJob.Status.QUEUED


def _try_providers(job: EmailJob) -> str:
    selection = ranking.select(pinned=job.pinned_provider)
    if not selection.providers:
        outbox.release(job, due_at=selection.retry_at, reason="no provider can take it now")
        return EmailJob.Status.QUEUED
    message = message_for(job)
    failures: list[Tried] = []
    for provider in selection.providers:
        if is_halted():
            outbox.release(job, due_at=timezone.now(), reason="halted before sending")
            return EmailJob.Status.QUEUED
        grant = provider_state.reserve(provider, at=provider_state.now())
        if not grant.ok:
            continue  # another worker took its last quota or its probe slot since we ranked
        started, clock = timezone.now(), time.monotonic()
        try:
            message_id = adapter_for(provider).send(message)
        except SendError as exc:
            error = exc
        except ProviderConfigError as exc:
            error = SendError(ErrorClass.PROVIDER_ERROR, str(exc), code="config")
        except SoftTimeLimitExceeded:
            # The task ran out of time inside a provider call: the outcome is unknown. Put the
            # job back for a retry now rather than at lease expiry, and end the batch; its other
            # jobs are republished by the drain.
            timed_out = SendError(ErrorClass.UNKNOWN, "task time limit", code="time_limit")
            record(job, provider, started, clock, ErrorClass.UNKNOWN, timed_out)
            note_outcome(provider, timed_out, probe=grant.probe)
            outbox.schedule_retry(job, error=f"{provider.name}: task time limit during the call")
            raise
        except Exception as exc:  # an adapter bug: the call may have gone out
            log.exception("provider %s raised unexpectedly", provider.name)
            error = SendError(ErrorClass.UNKNOWN, f"{type(exc).__name__}: {exc}", code="adapter")
        else:
            record_sent(job, provider, started, clock, message_id)
            note_outcome(provider, None, probe=grant.probe)
            return EmailJob.Status.SENT
        record(job, provider, started, clock, error.error_class, error)
        note_outcome(provider, error, probe=grant.probe)
        if error.error_class != ErrorClass.UNKNOWN:
            refund_quota(provider)  # it did not take the message
        if error.error_class == ErrorClass.RECIPIENT_REJECTED:
            outbox.mark_failed(job, error=f"{provider.name}: {error}")
            return EmailJob.Status.FAILED
        failures.append(Tried(provider, error))
    if not failures:
        outbox.release(job, due_at=timezone.now() + BUSY_RETRY, reason="providers busy")
        return EmailJob.Status.QUEUED
    return outbox.schedule_retry(
        job, error=summarize(failures), retry_after=common_retry_after(failures)
    )


def record_sent(job, provider, started, clock, message_id: str) -> None:
    """Write down an acceptance, reconnecting if the database connection just dropped.

    The provider has the message: losing this write would send it again after the lease. The
    write is safe to repeat, because mark_sent only matches the attempt this worker claimed.
    """
    for try_number in range(1, SENT_WRITE_TRIES + 1):
        try:
            with transaction.atomic():
                record(job, provider, started, clock, Outcome.ACCEPTED)
                outbox.mark_sent(job, provider=provider, message_id=message_id)
            return
        except (OperationalError, InterfaceError):
            if try_number == SENT_WRITE_TRIES:
                raise
            log.warning("database connection lost recording job %s as sent; retrying", job.pk)
            connection.close()


def refund_quota(provider: Provider) -> None:
    try:
        provider_state.refund(provider, at=provider_state.now())
    except redis.RedisError:  # the count errs on the safe side: one recipient too many
        log.warning("could not refund quota of provider %s", provider.name)


def note_outcome(provider: Provider, error: SendError | None, *, probe: bool) -> None:
    """Feed the outcome to the provider's penalty and circuit (DESIGN.md §6)."""
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
        duration_ms=int((time.monotonic() - clock) * 1000),
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
