"""What an organizer reads about one email: the outbox job's state in their words.

The one mapping used by the counts (dashboard, event page) and the guest list's delivery column:
an email due later is *scheduled* (with its date, in the event's zone), one due now and not yet
handed to a provider is *waiting to send*, then *sending*, *sent*, *failed* or *cancelled*; one
to an address on the suppression list is *suppressed* (counted with the failed ones: not sent).
Retries are not the organizer's concern: a job waiting for its next attempt is waiting to send.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Q
from django.utils import dateformat

from delivery.models import EmailJob

Status = EmailJob.Status
SCHEDULED, WAITING, SENDING = "scheduled", "waiting", "sending"
SENT, FAILED, CANCELLED = Status.SENT.value, Status.FAILED.value, Status.CANCELLED.value
SUPPRESSED = Status.SUPPRESSED.value
LABELS = {
    SCHEDULED: "scheduled",
    WAITING: "waiting to send",
    SENDING: "sending",
    SENT: "sent",
    FAILED: "failed",
    CANCELLED: "cancelled",
    SUPPRESSED: "suppressed",
}
# What the counts show, in the order an email goes through them (cancelled ones are not counted).
COUNTED = [SCHEDULED, WAITING, SENDING, SENT, FAILED]
NOT_SENT_YET = [Status.QUEUED, Status.RETRYING]


@dataclass(frozen=True)
class Progress:
    code: str
    label: str


def progress_code(status: str | None, not_before: dt.datetime | None, now: dt.datetime) -> str:
    """The organizer's word for a job's state; "" for no job."""
    if not status:
        return ""
    if status in NOT_SENT_YET:
        return SCHEDULED if not_before and not_before > now else WAITING
    return status


def scheduled_label(when: dt.datetime, tz: dt.tzinfo, now: dt.datetime) -> str:
    """``scheduled for 18 Dec`` (the year too when it is not this year), in the event's zone."""
    local = when.astimezone(tz)
    fmt = "j M" if local.year == now.astimezone(tz).year else "j M Y"
    return f"scheduled for {dateformat.format(local, fmt)}"


def job_progress(
    status: str | None, not_before: dt.datetime | None, *, now: dt.datetime, tz: dt.tzinfo
) -> Progress | None:
    code = progress_code(status, not_before, now)
    if not code:
        return None
    if code == SCHEDULED:
        return Progress(code, scheduled_label(not_before, tz, now))
    return Progress(code, LABELS[code])


def progress_filter(code: str, now: dt.datetime, prefix: str = "") -> Q | None:
    """Rows whose job (reached through ``prefix``, e.g. ``email_job__``) reads ``code``; None
    for an unknown code."""

    def q(**lookups) -> Q:
        return Q(**{prefix + key: value for key, value in lookups.items()})

    if code == SCHEDULED:
        return q(status__in=NOT_SENT_YET, not_before__gt=now)
    if code == WAITING:
        return q(status__in=NOT_SENT_YET) & (q(not_before__isnull=True) | q(not_before__lte=now))
    if code in (SENDING, SENT, FAILED, CANCELLED, SUPPRESSED):
        return q(status=code)
    return None


def empty_counts() -> dict:
    return {**dict.fromkeys(COUNTED, 0), "next_scheduled": None}


def add_to_counts(counts: dict, code: str, n: int, next_scheduled: dt.datetime | None) -> None:
    """Fold one (code, number, earliest due date) row into ``counts``."""
    code = FAILED if code == SUPPRESSED else code
    if code not in COUNTED:
        return
    counts[code] += n
    if code == SCHEDULED and next_scheduled:
        earlier = counts["next_scheduled"]
        counts["next_scheduled"] = min(earlier, next_scheduled) if earlier else next_scheduled
