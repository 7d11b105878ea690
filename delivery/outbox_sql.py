"""The one statement that records acceptances on PostgreSQL (``outbox.record_accepted`` runs it):
the attempts appended, the jobs moved sending -> sent under their claims, and the halt switch
read, in one round trip however many jobs. Other databases get the same from a transaction."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING

from django.db import connection

from delivery.models import DeliveryAttempt, EmailJob
from reliability.models import SystemControl

if TYPE_CHECKING:
    from delivery.outbox import Attempt

Status = EmailJob.Status
Outcome = DeliveryAttempt.Outcome


@functools.cache
def accepted_sql() -> str:
    attempt, job = DeliveryAttempt._meta, EmailJob._meta
    columns = ("job", "provider", "started_at", "duration_ms", "outcome", "error_code")
    columns += ("error_message",)
    quoted = [connection.ops.quote_name(attempt.get_field(name).column) for name in columns]
    return f"""
        WITH done (job_id, claimed, provider_id, message_id, started_at, duration_ms) AS (
            SELECT * FROM unnest(
                %s::bigint[], %s::int[], %s::bigint[], %s::text[], %s::timestamptz[], %s::int[]
            )
        ), attempt AS (
            INSERT INTO {attempt.db_table} ({", ".join(quoted)})
            SELECT job_id, provider_id, started_at, duration_ms, %s, '', '' FROM done
        ), job AS (
            UPDATE {job.db_table} AS j SET status = %s, provider_id = done.provider_id,
                provider_message_id = done.message_id, lease_expires_at = NULL,
                finished_at = %s, last_error = ''
            FROM done WHERE j.id = done.job_id AND j.status = %s AND j.attempts = done.claimed
        )
        SELECT EXISTS (SELECT 1 FROM {SystemControl._meta.db_table} WHERE id = 1 AND halted)
    """


def accepted_params(accepted: Sequence[Attempt], now: dt.datetime) -> list:
    columns = [
        [a.job.pk for a in accepted],
        [a.job.attempts for a in accepted],
        [a.provider.pk if a.provider else None for a in accepted],
        [a.message_id[:255] for a in accepted],
        [a.started_at for a in accepted],
        [a.duration_ms for a in accepted],
    ]
    return [*columns, Outcome.ACCEPTED, Status.SENT, now, Status.SENDING]
