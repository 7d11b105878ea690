"""The suppression list (docs/architecture.md, "Delivery events"): addresses that bounced hard,
soft-bounced ``GPMAS_SOFT_BOUNCES_TO_SUPPRESS`` times in a row, or complained get no further
email. ``delivery.services.email_enqueue`` records a job to such an address as ``suppressed``,
without any provider call. Every change is audited (``SuppressionAudit``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from delivery import outbox
from delivery.models import DeliveryEvent, EmailJob, Suppression, SuppressionAudit

State = EmailJob.DeliveryState
Reason = Suppression.Reason
# The only mail a suppressed address still gets: the answer to what the guest just did, unless
# they complained about our mail.
TRANSACTIONAL = {EmailJob.Kind.CONFIRMATION}


def normalized(address: str) -> str:
    return (address or "").strip().lower()


def active(*, now: dt.datetime | None = None) -> QuerySet[Suppression]:
    now = now or timezone.now()
    return Suppression.objects.filter(lifted_at__isnull=True).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=now)
    )


def blocked(addresses: Iterable[str], *, now: dt.datetime | None = None) -> dict[str, str]:
    """Of ``addresses``, those suppressed now: lower-cased address -> reason. One query."""
    wanted = {normalized(address) for address in addresses}
    if not wanted:
        return {}
    rows = active(now=now).filter(address__in=wanted).values_list("address", "reason")
    return dict(rows)


def stops(kind: str, reason: str) -> bool:
    """Whether a suppression for ``reason`` stops an email of ``kind``."""
    return kind not in TRANSACTIONAL or reason == Reason.COMPLAINT


def note_event(event: DeliveryEvent) -> Suppression | None:
    """Suppress the event's recipient if the event (with the ones before it) says so."""
    address = normalized(event.recipient)
    if not address:
        return None
    if event.outcome == State.COMPLAINED:
        return suppress(address, Reason.COMPLAINT, event=event)
    if event.outcome == State.BOUNCED_HARD:
        return suppress(address, Reason.HARD_BOUNCE, event=event)
    if event.outcome == State.BOUNCED_SOFT and _soft_bounces_in_a_row(address):
        return suppress(address, Reason.SOFT_BOUNCES, event=event)
    return None


def _soft_bounces_in_a_row(address: str) -> bool:
    """The address's last N outcomes (deferrals aside) are all soft bounces. Only those since
    its last suppression count: after a lift or an expiry, it starts again from nothing."""
    needed = settings.GPMAS_SOFT_BOUNCES_TO_SUPPRESS
    events = DeliveryEvent.objects.filter(recipient=address)
    last = Suppression.objects.filter(address=address).order_by("-created_at").first()
    if last is not None:
        events = events.filter(received_at__gt=last.created_at)
    outcomes = (
        events.exclude(outcome__in=["", State.DEFERRED])
        .order_by("-occurred_at", "-id")
        .values_list("outcome", flat=True)[:needed]
    )
    last = list(outcomes)
    return len(last) == needed and all(outcome == State.BOUNCED_SOFT for outcome in last)


def expiry(reason: str, now: dt.datetime) -> dt.datetime | None:
    days = (
        settings.GPMAS_COMPLAINT_SUPPRESSION_DAYS
        if reason == Reason.COMPLAINT
        else settings.GPMAS_BOUNCE_SUPPRESSION_DAYS
    )
    return now + dt.timedelta(days=days) if days else None


def suppress(address: str, reason: str, *, event: DeliveryEvent | None = None) -> Suppression:
    """Suppress ``address`` (again): a row that expired is replaced; an active one is kept, a
    complaint taking over a bounce's place (it lasts longer)."""
    now = timezone.now()
    address = normalized(address)
    with transaction.atomic():
        current = Suppression.objects.select_for_update().filter(
            address=address, lifted_at__isnull=True
        )
        row = current.first()
        in_force = row and (row.expires_at is None or row.expires_at > now)
        if in_force and (reason != Reason.COMPLAINT or row.reason == Reason.COMPLAINT):
            return row
        if row:
            current.update(lifted_at=now)
        try:
            with transaction.atomic():
                row = Suppression.objects.create(
                    address=address,
                    reason=reason,
                    source_event=event,
                    expires_at=expiry(reason, now),
                )
        except IntegrityError:  # another request suppressed it just now
            return Suppression.objects.get(address=address, lifted_at__isnull=True)
        source = f"webhook {event.provider_kind} event {event.event_id}" if event else "code"
        _audit(SuppressionAudit.Action.SUPPRESS, address, row.get_reason_display(), source)
        _suppress_waiting_jobs(address, reason)
    return row


def not_sent_note(reason: str, *, tense: str = "is") -> str:
    """The ``last_error`` of a job not sent for a suppression (``reason_in`` reads it back)."""
    return f"not sent: the address {tense} suppressed ({reason})"


def reason_in(note: str) -> str:
    """The suppression reason a ``not_sent_note`` names; "" for any other note."""
    head, found, tail = note.partition(" suppressed (")
    return tail.rstrip(")") if found and head.startswith("not sent: the address ") else ""


def _suppress_waiting_jobs(address: str, reason: str) -> int:
    """Jobs to the address still waiting to be sent are not sent either (a job already being
    sent goes)."""
    waiting = EmailJob.objects.filter(to_email__iexact=address)
    if reason != Reason.COMPLAINT:
        waiting = waiting.exclude(kind__in=TRANSACTIONAL)
    return outbox.suppress_waiting(waiting, reason=not_sent_note(reason, tense="was"))


def lift(suppressions: QuerySet[Suppression], *, by, source: str, reason: str) -> int:
    """Lift the given suppressions that are not lifted yet; each lift is audited."""
    now = timezone.now()
    count = 0
    chosen = list(suppressions.values_list("pk", flat=True))
    with transaction.atomic():
        rows = Suppression.objects.select_for_update().filter(pk__in=chosen, lifted_at=None)
        for row in rows:
            row.lifted_at, row.lifted_by = now, by
            row.save(update_fields=["lifted_at", "lifted_by"])
            _audit(SuppressionAudit.Action.LIFT, row.address, reason, source, by=by)
            count += 1
    return count


def _audit(action: str, address: str, reason: str, source: str, *, by=None) -> None:
    SuppressionAudit.objects.create(
        action=action, address=address, reason=reason, changed_by=by, source=source[:200]
    )
