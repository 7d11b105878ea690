"""The banner above every signed-in page: what the reader can act on, in their words.

Organizers hear only what affects their own emails: that sending is paused (never the operator's
reason), or that their emails are waiting longer than usual. A provider outage that failover
absorbs tells them nothing. Staff see the system's state with its detail (``gpmas.system``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.db.models import CharField, Q, Value
from django.db.models.functions import Cast, Coalesce, Concat
from django.utils import timezone

from delivery.models import EmailJob
from events.models import Event
from gpmas.system import HALTED, system_state
from reliability import halt

PAUSED = "Email sending is paused; your emails will go out automatically when it resumes."
DELAYED = "Emails are delayed; they will be sent automatically."
WAITING = [EmailJob.Status.QUEUED, EmailJob.Status.RETRYING, EmailJob.Status.SENDING]


@dataclass(frozen=True)
class Notice:
    headline: str
    detail: str = ""


def staff_notice() -> Notice | None:
    """The system's state for operators: which providers, why halted."""
    state = system_state()
    if state.is_normal:
        return None
    if state.code == HALTED:
        reason = halt.current().reason
        return Notice("Email sending is halted.", f"Reason: {reason}. Emails wait until resumed.")
    return Notice(f"Email sending is {state.code}.", state.message)


def organizer_notice(organizer, now: dt.datetime | None = None) -> Notice | None:
    """Paused, delayed, or nothing. Two queries at most (the halt switch, the organizer's jobs)."""
    if halt.current().halted:
        return Notice(PAUSED)
    if emails_delayed(organizer, now):
        return Notice(DELAYED)
    return None


def emails_delayed(organizer, now: dt.datetime | None = None) -> bool:
    """Whether any email of the organizer's events has been due, unsent, for longer than
    ``GPMAS_EMAIL_DELAYED_AFTER_SECONDS``. Scheduled emails not yet due never count."""
    now = now or timezone.now()
    cutoff = now - dt.timedelta(seconds=settings.GPMAS_EMAIL_DELAYED_AFTER_SECONDS)
    pk = Cast("pk", output_field=CharField())
    events = Event.objects.filter(organizer=organizer)
    topics = events.annotate(t=Concat(Value("event:"), pk)).values("t")
    notices = events.annotate(t=Concat(Value("event:"), pk, Value(":cancellation"))).values("t")
    return (
        EmailJob.objects.filter(Q(topic__in=topics) | Q(topic__in=notices), status__in=WAITING)
        .alias(due=Coalesce("not_before", "created_at"))
        .filter(due__lte=cutoff)
        .exists()
    )


def notice_for(user) -> Notice | None:
    return staff_notice() if user.is_staff else organizer_notice(user)
