"""The drain (docs/architecture.md, "The drain"): find due jobs and publish them to the workers.

Runs from Celery beat every few seconds and whenever a write nudges it. The Redis lock keeps
two drains from doing the same work; the row locks (SKIP LOCKED) and the ``dispatched_at`` stamp
keep them from publishing the same job even if the lock is lost.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import redis
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from delivery import outbox
from reliability import locks
from reliability import redis as project_redis
from reliability.halt import is_halted

log = logging.getLogger(__name__)

DRAIN_LOCK = "drain"
# The holder's renewal thread keeps the lock for as long as a drain runs, so the expiry only
# says how long a drain killed mid-tick (kill -9, a lost machine) holds back the next ones: every
# expired lease and due job waits that long. Short, like the stack's other recovery times.
LOCK_EXPIRE_SECONDS = 10
# Batch sizes (``batch_size_for``): no smaller than this while ``GPMAS_DRAIN_BATCH_SIZE`` allows,
# and large enough beyond that to make at most ``SPREAD`` batches of what is due.
SMALLEST_BATCH = 100
SPREAD = 16


@dataclass
class DrainReport:
    ran: bool = False
    reconciled: int = 0
    dispatched: int = 0
    reason: str = ""


def outbox_drain(*, publish: Callable[[list[int]], None]) -> DrainReport:
    """One drain tick, handing due job ids to ``publish`` in batches (``delivery.tasks`` gives
    it the Celery publisher). A drain that cannot take its lock leaves a note and does nothing."""
    rerun_flag = project_redis.key("drain", "rerun")
    try:
        with locks.hold(DRAIN_LOCK, expire=LOCK_EXPIRE_SECONDS):
            report = DrainReport(ran=True)
            while True:
                project_redis.client().delete(rerun_flag)
                once = _drain_once(publish)
                report.reconciled += once.reconciled
                report.dispatched += once.dispatched
                report.reason = once.reason
                # Jobs written while we ran asked for a drain we skipped: go round again.
                if not project_redis.client().exists(rerun_flag):
                    return report
    except locks.LockBusy:
        _leave_rerun_note(rerun_flag)
        return DrainReport(reason="another drain is running")
    except redis.RedisError as exc:
        log.warning("drain skipped: Redis unavailable (%s)", exc)
        return DrainReport(reason="redis unavailable")


def _leave_rerun_note(flag: str) -> None:
    with contextlib.suppress(redis.RedisError):
        project_redis.client().set(flag, 1, ex=LOCK_EXPIRE_SECONDS)


def _drain_once(publish: Callable[[list[int]], None]) -> DrainReport:
    report = DrainReport(ran=True, reconciled=outbox.reconcile_expired_leases())
    if is_halted():
        report.reason = "halted"
        return report
    job_ids = _take_due_ids(timezone.now())
    batch_size = batch_size_for(len(job_ids))
    for start in range(0, len(job_ids), batch_size):
        batch = job_ids[start : start + batch_size]
        try:
            publish(batch)
        except Exception:
            # Broker down: unstamp what was not published so the next drain tries again.
            outbox.clear_dispatched(job_ids[start:])
            log.warning("drain could not publish; %d job(s) wait", len(job_ids) - start)
            report.reason = "broker unavailable"
            break
        report.dispatched += len(batch)
    return report


def batch_size_for(due: int) -> int:
    """Job ids per published batch: ``GPMAS_DRAIN_BATCH_SIZE`` when many are due, so a big
    invite makes fewer and fuller batch calls (SendGrid, Mailgun, SES), but down to
    ``SMALLEST_BATCH`` so that a smaller one is still shared by ``SPREAD`` worker processes
    (one-by-one providers such as SMTP are sent faster by more processes, not larger tasks)."""
    largest = settings.GPMAS_DRAIN_BATCH_SIZE
    return max(min(SMALLEST_BATCH, largest), min(largest, math.ceil(due / SPREAD)))


def _take_due_ids(now: dt.datetime) -> list[int]:
    """Select and stamp due jobs not published within the last minute, in one transaction."""
    recently = now - dt.timedelta(seconds=settings.GPMAS_REDISPATCH_AFTER_SECONDS)
    with transaction.atomic():
        due = (
            outbox.due_jobs(now)
            .filter(Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=recently))
            .order_by("next_attempt_at", "id")
            .select_for_update(skip_locked=True)
            .values_list("id", flat=True)[: settings.GPMAS_DRAIN_LIMIT]
        )
        job_ids = list(due)
        outbox.stamp_dispatched(job_ids, now=now)
    return job_ids
