"""What an organizer reads about one email: the outbox job's state in their words.

The one mapping used by the counts (dashboard, event page) and the guest list's delivery column:
an email due later is *scheduled* (with its date, in the event's zone), one due now and not yet
handed to a provider is *waiting to send*, then *sending*, *sent*, *failed* or *cancelled*; one
to an address on the suppression list is *suppressed* (counted with the failed ones: not sent).
Retries are not the organizer's concern: a job waiting for its next attempt is waiting to send.

Once the provider's events say what happened after it took the email (``EmailJob.delivery_state``,
docs/job-states.md), that outcome is what the row shows: *delivered*, *delayed*, *bounced*,
*marked as spam* or *unsubscribed*, with a reason in plain words (``REASONS``); a suppressed
email says why it was not sent. No provider names, no "hard bounce": the organizer's words only.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Q
from django.utils import dateformat

from delivery import suppression
from delivery.models import EmailJob, Suppression
from delivery.unsubscribe import REASON as UNSUBSCRIBED_NOTE

Status = EmailJob.Status
State = EmailJob.DeliveryState
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

# After sending: code -> (label, the delivery states it stands for), in the order of the counts.
OUTCOMES = {
    "delivered": ("delivered", [State.DELIVERED]),
    "delayed": ("delayed", [State.DEFERRED]),
    "bounced": ("bounced", [State.BOUNCED_SOFT, State.BOUNCED_HARD]),
    "complained": ("marked as spam", [State.COMPLAINED]),
    "unsubscribed": ("unsubscribed", [State.UNSUBSCRIBED]),
}
OUTCOME_OF = {state: code for code, (_, states) in OUTCOMES.items() for state in states}
LABELS.update({code: label for code, (label, _) in OUTCOMES.items()})
REASONS = {
    State.DEFERRED: "the receiving server is deferring it; it will be tried again",
    State.BOUNCED_SOFT: "the receiving server turned it away for now (a full mailbox, say)",
    State.BOUNCED_HARD: "the address does not exist",
    State.COMPLAINED: "the guest marked it as spam",
    State.UNSUBSCRIBED: "the guest unsubscribed from your emails",
}
Reason = Suppression.Reason
NOT_SENT_BECAUSE = {
    Reason.HARD_BOUNCE: "not sent: this address bounced before",
    Reason.SOFT_BOUNCES: "not sent: emails to this address kept bouncing",
    Reason.COMPLAINT: "not sent: the guest marked an earlier email as spam",
}
NOT_SENT_UNSUBSCRIBED = "not sent: the guest unsubscribed from your emails"


@dataclass(frozen=True)
class Progress:
    code: str
    label: str
    reason: str = ""


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
    status: str | None,
    not_before: dt.datetime | None,
    *,
    now: dt.datetime,
    tz: dt.tzinfo,
    delivery_state: str = "",
    note: str = "",
) -> Progress | None:
    """The row's word and reason; ``note`` is the job's ``last_error`` when it was suppressed."""
    if delivery_state in OUTCOME_OF:  # the provider's events know more than "sent"
        code = OUTCOME_OF[delivery_state]
        return Progress(code, LABELS[code], REASONS.get(delivery_state, ""))
    code = progress_code(status, not_before, now)
    if not code:
        return None
    if code == SCHEDULED:
        return Progress(code, scheduled_label(not_before, tz, now))
    if code == SUPPRESSED:
        return Progress(code, LABELS[code], not_sent_because(note))
    return Progress(code, LABELS[code])


def not_sent_because(note: str) -> str:
    """Why a suppressed job was not sent, from the note its writer left
    (``suppression.not_sent_note``, or ``delivery.unsubscribe.REASON``)."""
    if note == UNSUBSCRIBED_NOTE:
        return NOT_SENT_UNSUBSCRIBED
    reason = suppression.reason_in(note)
    return NOT_SENT_BECAUSE.get(reason, "not sent: this address is on the do-not-send list")


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
    if code in OUTCOMES:
        return q(delivery_state__in=OUTCOMES[code][1])
    return None


def empty_counts() -> dict:
    counts = {**dict.fromkeys(COUNTED, 0), "next_scheduled": None, SUPPRESSED: 0}
    return {**counts, "after": dict.fromkeys(OUTCOMES, 0)}


def add_to_counts(
    counts: dict, code: str, n: int, next_scheduled: dt.datetime | None, delivery_state: str = ""
) -> None:
    """Fold one (code, delivery state, number, earliest due date) row into ``counts``: the send
    progress (a suppressed one is counted with the failed ones, and apart too) and, for emails
    the provider's events told about, ``after`` (delivered, delayed, bounced, …)."""
    if delivery_state in OUTCOME_OF:
        counts["after"][OUTCOME_OF[delivery_state]] += n
    if code == SUPPRESSED:
        counts[SUPPRESSED] += n
        code = FAILED
    if code not in COUNTED:
        return
    counts[code] += n
    if code == SCHEDULED and next_scheduled:
        earlier = counts["next_scheduled"]
        counts["next_scheduled"] = min(earlier, next_scheduled) if earlier else next_scheduled
