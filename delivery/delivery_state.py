"""A job's delivery state (docs/job-states.md, "Delivery state"): the one code that writes
``EmailJob.delivery_state``, beside ``delivery.outbox``, which writes everything else of a job.

"Best status wins": an event only ever moves a job up ``RANK``, so events arriving late or out of
order (a ``delivered`` after a ``bounced``) never move it back. One conditional UPDATE, so two
webhook requests racing for the same job cannot undo each other either.
"""

from __future__ import annotations

import datetime as dt

from delivery.models import EmailJob

State = EmailJob.DeliveryState
RANK = {
    State.NONE: 0,
    State.DEFERRED: 1,
    State.DELIVERED: 2,
    State.BOUNCED_SOFT: 3,
    State.BOUNCED_HARD: 4,
    State.UNSUBSCRIBED: 5,
    State.COMPLAINED: 6,
}


def record_delivery_state(job_id: int, state: str, *, at: dt.datetime) -> bool:
    """Move the job to ``state`` if that ranks above its current one; whether it moved."""
    below = [known for known, rank in RANK.items() if rank < RANK[State(state)]]
    updated = EmailJob.objects.filter(pk=job_id, delivery_state__in=below).update(
        delivery_state=state, delivery_state_at=at
    )
    return bool(updated)
