"""The invariants of docs/invariants.md, measured after a chaos scenario.

``snapshot`` reads what happened from the database and from the emulators' capture; everything
else is pure functions over that snapshot, so the figures can be checked without a stack. The
snapshot's records and the report's row are in tests/chaos/records.py.

Definitions (the report's columns):

- **submitted**: jobs the scenario wrote.
- **lost**: at the deadline, neither terminal, nor waiting for a time after the deadline, nor
  ``sending`` under an unexpired lease: a job nothing will ever pick up again. Target 0.
- **duplicates**: jobs an emulator captured more than once (by ``X-GPMAS-Job``). Each gets a
  cause: the job has an ``unknown`` attempt (a lease that expired after a crash, a time limit or
  a timeout inside the provider call) for every extra copy, so the provider accepted before the
  worker could commit: "crash after provider accepted, before commit". Anything else is
  "unexplained". Target: 0 unexplained.
- **stuck**: ``sending`` with a lease that ran out, at the deadline. Target 0.
- **recovery**: for every job the fault touched (not terminal when the fault began), the time
  from the end of the fault to the job's ``finished_at`` (0 if it finished during the fault).
- **overbookings / double acceptances**: events with more accepted seats than capacity;
  invitations with more than one confirmation. Target 0.
- **calls while open / halted**: provider calls that started inside a window in which none may
  start (an open circuit, a halt), after a grace for a call already on its way. Target 0.
- **throughput**: jobs sent per second, from the first job written to the last one sent.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Sequence

from django.db.models import Count

from delivery.models import DeliveryAttempt, EmailJob
from sandbox import Sandbox
from tests.chaos.records import (
    ARRIVAL_GRACE_SECONDS,
    CRASH_CAUSE,
    GRACE_SECONDS,
    TERMINAL,
    UNEXPLAINED,
    WAITING,
    Attempt,
    Capture,
    Duplicate,
    Job,
    Report,
    Snapshot,
)
from tests.chaos.table import MARKDOWN_HEADER  # noqa: F401 - re-exported

# --- Reading ------------------------------------------------------------------------------------


def _ts(value) -> float | None:
    return value.timestamp() if value is not None else None


def snapshot(job_ids: Iterable[int], sandbox: Sandbox) -> Snapshot:
    ids = list(job_ids)
    jobs = [
        Job(
            j.id,
            j.status,
            j.created_at.timestamp(),
            _ts(j.finished_at),
            _ts(j.next_attempt_at),
            _ts(j.lease_expires_at),
        )
        for j in EmailJob.objects.filter(pk__in=ids).order_by("id")
    ]
    attempts = [
        Attempt(
            a.job_id,
            a.provider.kind if a.provider else "",
            a.started_at.timestamp(),
            a.outcome,
            a.error_code,
        )
        for a in DeliveryAttempt.objects.filter(job_id__in=ids).select_related("provider")
    ]
    wanted = set(ids)
    captures = [
        Capture(int(m.job), m.provider, m.received_at)
        for m in sandbox.inbox.messages()
        if m.job and m.job.isdigit() and int(m.job) in wanted
    ]
    return Snapshot(jobs, attempts, captures)


# --- Pure measures ------------------------------------------------------------------------------


def lost_jobs(jobs: Sequence[Job], *, deadline: float) -> list[int]:
    def accounted(job: Job) -> bool:
        if job.status in TERMINAL:
            return True
        if job.status in WAITING:
            return job.next_attempt_at is not None and job.next_attempt_at > deadline
        return job.status == "sending" and (job.lease_expires_at or 0) > deadline

    return [job.id for job in jobs if not accounted(job)]


def stuck_jobs(jobs: Sequence[Job], *, now: float) -> list[int]:
    return [j.id for j in jobs if j.status == "sending" and (j.lease_expires_at or 0) < now]


def duplicates(captures: Sequence[Capture], attempts: Sequence[Attempt]) -> list[Duplicate]:
    copies = Counter(c.job_id for c in captures)
    unknown: dict[int, list[str]] = {}
    for a in attempts:
        if a.outcome == DeliveryAttempt.Outcome.UNKNOWN:
            unknown.setdefault(a.job_id, []).append(a.error_code)
    found = []
    for job_id, n in sorted(copies.items()):
        if n < 2:
            continue
        codes = unknown.get(job_id, [])
        # Every extra copy needs an attempt whose outcome the worker never learned.
        cause = CRASH_CAUSE if len(codes) >= n - 1 else UNEXPLAINED
        providers = [c.provider for c in captures if c.job_id == job_id]
        found.append(Duplicate(job_id, n, providers, cause, codes))
    return found


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def recovery_times(jobs: Sequence[Job], *, fault_start: float, fault_end: float) -> list[float]:
    """Seconds from the fault's end to each touched job's end; jobs not finished are left out
    (they are counted as lost or stuck, or are due later)."""
    touched = [
        j
        for j in jobs
        if j.created_at <= fault_end and (j.finished_at is None or j.finished_at >= fault_start)
    ]
    return [max(0.0, j.finished_at - fault_end) for j in touched if j.finished_at is not None]


def calls_in_windows(
    attempts: Sequence[Attempt],
    windows: Sequence[tuple[float, float]],
    *,
    provider: str | None = None,
    grace: float = GRACE_SECONDS,
) -> int:
    """Provider calls (attempts with a provider) that started inside a window, after the grace."""
    return sum(
        1
        for a in attempts
        if a.provider and (provider is None or a.provider == provider)
        for start, end in windows
        if start + grace < a.started_at < end
    )


def emulator_calls_in_windows(
    calls: Sequence[tuple[str, float]],
    windows: Sequence[tuple[float, float]],
    *,
    provider: str | None = None,
    grace: float = ARRIVAL_GRACE_SECONDS,
) -> int:
    """The same, from the emulators' side: calls that arrived inside a window."""
    return sum(
        1
        for name, at in calls
        if provider is None or name == provider
        for start, end in windows
        if start + grace < at < end
    )


def throughput(jobs: Sequence[Job]) -> tuple[float, float]:
    """(sent per second, seconds from the first job written to the last one finished)."""
    sent = [j.finished_at for j in jobs if j.status == "sent" and j.finished_at]
    if not sent or not jobs:
        return 0.0, 0.0
    span = max(max(sent) - min(j.created_at for j in jobs), 1e-3)
    return len(sent) / span, span


def report(
    scenario: str,
    snap: Snapshot,
    *,
    deadline: float,
    now: float,
    fault_start: float,
    fault_end: float,
    halted: Sequence[tuple[float, float]] = (),
    open_windows: Sequence[tuple[float, float]] = (),
    open_provider: str | None = None,
    emulator_calls: Sequence[tuple[str, float]] = (),
    **extra: object,
) -> Report:
    """The scenario's figures. Calls in a forbidden window are counted both from the
    attempts the workers recorded and from what the emulators received; the larger counts."""
    recovery = recovery_times(snap.jobs, fault_start=fault_start, fault_end=fault_end)
    rate, span = throughput(snap.jobs)
    return Report(
        scenario=scenario,
        submitted=len(snap.jobs),
        statuses=dict(Counter(j.status for j in snap.jobs)),
        lost=len(lost_jobs(snap.jobs, deadline=deadline)),
        duplicates=duplicates(snap.captures, snap.attempts),
        stuck=len(stuck_jobs(snap.jobs, now=now)),
        recovery_p50=percentile(recovery, 50),
        recovery_p99=percentile(recovery, 99),
        recovery_max=max(recovery) if recovery else None,
        calls_while_open=(
            max(
                calls_in_windows(snap.attempts, open_windows, provider=open_provider),
                emulator_calls_in_windows(emulator_calls, open_windows, provider=open_provider),
            )
            if open_provider
            else None
        ),
        calls_while_halted=(
            max(
                calls_in_windows(snap.attempts, halted),
                emulator_calls_in_windows(emulator_calls, halted),
            )
            if halted
            else None
        ),
        throughput=rate,
        duration_s=span,
        extra=dict(extra),
    )


# --- Bookings -----------------------------------------------------------------------------------


def overbooked_events(events: Iterable[tuple[int | None, int, int]]) -> int:
    """Events (capacity, seats by accepted invitations, seat counter) holding more than capacity."""
    return sum(
        1
        for capacity, recount, counter in events
        if capacity is not None and (recount > capacity or counter > capacity)
    )


def double_acceptances(topics: Iterable[str]) -> int:
    """Invitations with more than one confirmation email, from the outbox itself."""
    rows = (
        EmailJob.objects.filter(topic__in=list(topics), kind=EmailJob.Kind.CONFIRMATION)
        .values("topic", "to_email")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
    )
    return rows.count()
