"""One provider call and what it says about the provider: its timing, its outcome as an
``ErrorClass``, and the penalty and quota bookkeeping that follows (docs/ranking.md)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import redis
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.utils import timezone

from delivery import outbox, provider_state
from delivery.connections import adapter_for
from delivery.freshness import DeferredSuccesses
from delivery.message import JOB_HEADER, OutgoingMessage
from delivery.models import DeliveryAttempt, EmailJob, Provider
from delivery.provider_state import Grant
from delivery.providers import Adapter, ErrorClass, ProviderConfigError, SendError
from delivery.providers.base import BatchAnswer

log = logging.getLogger(__name__)


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
class Call:
    """One call to one provider, timed from just before it starts."""

    provider: Provider
    started_at: dt.datetime = field(default_factory=timezone.now)
    clock: float = field(default_factory=time.monotonic)
    message_id: str = ""
    error: SendError | None = None
    seconds: float = 0.0
    # A batch call the provider answered message by message: each message's id or error.
    answers: list[str | SendError] | None = None

    @property
    def duration_ms(self) -> int:
        return int(self.seconds * 1000)

    def finish(self, error: SendError | None = None) -> Call:
        self.error = error
        self.seconds = time.monotonic() - self.clock
        return self

    def make(self, send: Callable[[Adapter], BatchAnswer]) -> Call:
        """Make the call; its failure is kept as a SendError. A task time limit is raised: the
        caller records the call (``finish``) as an unknown outcome."""
        try:
            answer = send(adapter_for(self.provider))
        except SoftTimeLimitExceeded:
            raise
        except SendError as exc:
            return self.finish(exc)
        except ProviderConfigError as exc:
            return self.finish(SendError(ErrorClass.PROVIDER_ERROR, str(exc), code="config"))
        except Exception as exc:  # an adapter bug: the call may have gone out
            log.exception("provider %s raised unexpectedly", self.provider.name)
            error = SendError(ErrorClass.UNKNOWN, f"{type(exc).__name__}: {exc}", code="adapter")
            return self.finish(error)
        if isinstance(answer, str):
            self.message_id = answer
        else:
            self.answers = answer
        return self.finish()

    def per_message(self, count: int) -> list[Call]:
        """This call as each of its ``count`` messages saw it: its own id or its own error."""
        if self.answers is None:
            return [self] * count
        return [
            dataclasses.replace(self, message_id="", error=answer, answers=None)
            if isinstance(answer, SendError)
            else dataclasses.replace(self, message_id=answer, answers=None)
            for answer in self.answers
        ]

    def attempt(self, job: EmailJob) -> outbox.Attempt:
        """The attempt-log entry of this call for ``job``."""
        if self.error is None:
            outcome, code, text = DeliveryAttempt.Outcome.ACCEPTED, "", ""
        else:
            outcome, code, text = self.error.error_class, self.error.code, str(self.error)
        return outbox.Attempt(
            job,
            self.provider,
            self.started_at,
            self.duration_ms,
            outcome,
            code,
            text,
            message_id=self.message_id,
        )


def note_outcome(done: Call, *, grant: Grant, messages: int, successes: DeferredSuccesses) -> None:
    """Feed the call's outcome to the provider's penalty, circuit, latency and calls in flight.
    A plain success waits for the batch's next Redis round trip (``delivery.freshness``); the
    rest is written now."""
    provider, error = done.provider, done.error
    timing = {
        "call_id": grant.call_id,
        "seconds_per_message": done.seconds / max(messages, 1),
        "slow": done.seconds > settings.GPMAS_LATENCY_CEILING_SECONDS,
    }
    if error is None and not grant.probe:
        successes.add(provider, at=provider_state.now(), **timing)
        return
    outcome = error.error_class if error else DeliveryAttempt.Outcome.ACCEPTED
    try:
        provider_state.record_outcome(
            provider,
            outcome,
            at=provider_state.now(),
            probe=grant.probe,
            retry_after=error.retry_after if error else None,
            error=f"{error.code} {error}" if error else "",
            along=successes.pending,
            **timing,
        )
    except redis.RedisError:
        log.warning("could not record %s for provider %s", outcome, provider.name)


def refund_quota(done: Call, recipients: int = 1) -> None:
    """The provider did not take the message(s): give their quota back. Not after an unknown
    outcome, because it may have."""
    if done.error is None or done.error.error_class == ErrorClass.UNKNOWN:
        return
    try:
        provider_state.refund(done.provider, at=provider_state.now(), recipients=recipients)
    except redis.RedisError:  # the count errs on the safe side: one recipient too many
        log.warning("could not refund quota of provider %s", done.provider.name)
