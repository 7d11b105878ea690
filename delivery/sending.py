"""The send path (docs/architecture.md, "Sending"): a batch of claimed jobs to the providers.

One Celery message carries up to ``GPMAS_DRAIN_BATCH_SIZE`` job ids. ``jobs_send`` checks the
halt switch once, claims the jobs in one transaction and hands them to a
``delivery.batch_send.BatchSend``, which keeps up to ``GPMAS_CALLS_IN_FLIGHT`` provider calls
going (``delivery.inflight``) and tries providers for each job in ranked order until one
accepts it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from django.conf import settings

from delivery import outbox
from delivery.batch_send import HALTED, NOT_CLAIMED, BatchSend
from delivery.models import Provider
from reliability.halt import is_halted

__all__ = ["HALTED", "NOT_CLAIMED", "jobs_send"]


def jobs_send(*, job_ids: Sequence[int], hand_over: bool = False) -> dict[int, str]:
    """Send a batch of jobs; the status each was left in ("halted" or "not-claimed" for jobs
    that were not claimed: halted before the claim, or not due, or someone else's). With
    ``hand_over`` (a worker) return as soon as nothing is left to start (``BatchSend.run``)."""
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
        results.update(BatchSend(jobs, providers, deadline=deadline).run(hand_over=hand_over))
    return results
