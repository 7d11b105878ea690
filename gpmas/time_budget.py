"""The time limits of a send, checked together at start-up (docs/architecture.md, "Time limits").

A worker claims a batch of jobs and starts provider calls until the batch's deadline. Every bound
must hold with room to spare, or a call is cut off mid-flight (an unknown outcome, a duplicate
after the lease) or a job is handed to a second worker while the first still sends it:

    deadline + connect + read timeout + margin  <=  soft time limit  <  time limit
                                                <  job lease  <  broker visibility timeout

A configuration that breaks one is refused with one line naming the variables involved.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpmas.env import ConfigError

# Room between the end of the slowest possible call and the soft time limit, for recording it.
# An SMTP call of several messages starts its last one up to ``smtp.CALL_SECONDS`` (0.5 s) in,
# so it may end that much after the longest single call: the margin covers it
# (tests/test_time_budget.py holds the one below the other).
MARGIN_SECONDS = 1.0
# A batch must get at least this long to start calls, or it would only ever put its jobs back.
MIN_DEADLINE_SECONDS = 1.0
CALL = "GPMAS_PROVIDER_CONNECT_TIMEOUT + GPMAS_PROVIDER_READ_TIMEOUT"


@dataclass(frozen=True)
class SendTimes:
    lease: float  # GPMAS_JOB_LEASE_SECONDS
    time_limit: float  # CELERY_TASK_TIME_LIMIT
    soft_time_limit: float  # 4/5 of CELERY_TASK_TIME_LIMIT
    visibility_timeout: float  # CELERY_VISIBILITY_TIMEOUT
    connect_timeout: float  # GPMAS_PROVIDER_CONNECT_TIMEOUT
    read_timeout: float  # GPMAS_PROVIDER_READ_TIMEOUT
    probe_timeout: float  # GPMAS_PROBE_TIMEOUT_SECONDS
    latency_ceiling: float  # GPMAS_LATENCY_CEILING_SECONDS
    calls_in_flight: int  # GPMAS_CALLS_IN_FLIGHT
    batch_size: int  # GPMAS_DRAIN_BATCH_SIZE

    @property
    def longest_call(self) -> float:
        return self.connect_timeout + self.read_timeout


def batch_deadline(times: SendTimes) -> float:
    """Seconds after its claim past which a batch starts no provider call; raises ConfigError
    for the first contradiction found."""
    _check_order(times)
    _check_calls(times)
    room = times.soft_time_limit - times.longest_call - MARGIN_SECONDS
    if room < MIN_DEADLINE_SECONDS:
        raise ConfigError(
            "CELERY_TASK_TIME_LIMIT",
            f"is too short for the provider timeouts: its soft limit ({times.soft_time_limit:g}s,"
            f" 4/5 of it) must exceed {CALL} ({times.longest_call:g}s) by at least"
            f" {MARGIN_SECONDS + MIN_DEADLINE_SECONDS:g}s, so that a call a batch starts in time"
            " ends before the soft limit",
        )
    return min(times.lease / 2, room)


def _check_order(times: SendTimes) -> None:
    if times.time_limit >= times.lease:
        raise ConfigError("CELERY_TASK_TIME_LIMIT", "must be below GPMAS_JOB_LEASE_SECONDS")
    if times.lease >= times.visibility_timeout:
        raise ConfigError("GPMAS_JOB_LEASE_SECONDS", "must be below CELERY_VISIBILITY_TIMEOUT")


def _check_calls(times: SendTimes) -> None:
    if times.probe_timeout <= times.longest_call:
        raise ConfigError(
            "GPMAS_PROBE_TIMEOUT_SECONDS",
            f"must be longer than the longest provider call, {CALL} ({times.longest_call:g}s):"
            " a probe slot that expires mid-call lets a second probe start",
        )
    if times.latency_ceiling >= times.read_timeout:
        raise ConfigError(
            "GPMAS_LATENCY_CEILING_SECONDS",
            "must be below GPMAS_PROVIDER_READ_TIMEOUT: a call slower than the read timeout"
            " times out before it can count as slow",
        )
    if times.calls_in_flight > times.batch_size:
        raise ConfigError(
            "GPMAS_CALLS_IN_FLIGHT",
            f"must not exceed GPMAS_DRAIN_BATCH_SIZE ({times.batch_size}): the calls in flight"
            " come from one batch, so the slots above it could never be used",
        )
