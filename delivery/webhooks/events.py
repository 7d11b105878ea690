"""anymail's normalized ``tracking`` signal -> a ``DeliveryEvent`` row (once per provider and
event id), the job's delivery state (``delivery.delivery_state``) and the suppression list
(``delivery.suppression``). An event that maps to no job is stored with ``job`` empty and
counted (``unmatched_count``), not dropped.

Correlation, in order: our job id as the provider hands it back (``gpmas_job`` in SendGrid's
``custom_args`` and Mailgun's ``v:`` variables, both anymail's ``metadata``; the ``X-GPMAS-Job``
header in an SES event's ``mail.headers``), else the provider's message id when exactly one job
of that provider kind has it. Either way the job's address must be the event's recipient.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import logging
import re

from anymail.signals import AnymailTrackingEvent, EventType, RejectReason
from django.db import IntegrityError, transaction
from django.utils import timezone

from delivery import outbox, suppression, unsubscribe
from delivery.delivery_state import record_delivery_state
from delivery.message import JOB_HEADER, JOB_METADATA
from delivery.models import DeliveryEvent, EmailJob

log = logging.getLogger(__name__)
State = EmailJob.DeliveryState
KIND_OF_ESP = {"SendGrid": "sendgrid", "Mailgun": "mailgun", "Amazon SES": "ses"}
OUTCOME = {
    EventType.DELIVERED: State.DELIVERED,
    EventType.DEFERRED: State.DEFERRED,
    EventType.BOUNCED: State.BOUNCED_HARD,
    EventType.COMPLAINED: State.COMPLAINED,
    EventType.UNSUBSCRIBED: State.UNSUBSCRIBED,
}
# A message the provider dropped before sending, for one of these reasons, counts as bounced.
REJECTED_OUTCOME = {
    RejectReason.BOUNCED: State.BOUNCED_HARD,
    RejectReason.INVALID: State.BOUNCED_HARD,
    RejectReason.SPAM: State.COMPLAINED,
    RejectReason.UNSUBSCRIBED: State.UNSUBSCRIBED,
}
# Every other event shows the provider took the message (SendGrid's "processed" is anymail's
# queued; a "rejected" one was taken, then dropped): an attempt whose outcome was unknown sent it.
NOT_ACCEPTED = {EventType.FAILED, EventType.UNKNOWN, EventType.INBOUND, EventType.INBOUND_FAILED}
# A job id as we send it: ASCII digits that fit a bigint ("²".isdigit() is true, int() refuses it).
JOB_ID = re.compile(r"[0-9]{1,18}")
# Set once anymail's signal is being handled: an error after that is ours, not the body's.
writing: contextvars.ContextVar[bool] = contextvars.ContextVar("webhook_writing", default=False)


def on_tracking(sender, event: AnymailTrackingEvent, esp_name: str, **_) -> None:
    """The ``tracking`` signal's receiver (connected in ``delivery.apps``)."""
    writing.set(True)
    kind = KIND_OF_ESP.get(esp_name)
    if kind is None:
        log.warning("tracking event from an unexpected ESP %r ignored", esp_name)
        return
    apply_event(kind, event)


def apply_event(kind: str, event: AnymailTrackingEvent) -> DeliveryEvent | None:
    """Store the event and apply it; None (and nothing changed) when it was stored before."""
    raw = _raw(event.esp_event)
    recipient = suppression.normalized(_text(event.recipient))[:254]
    row = DeliveryEvent(
        provider_kind=kind,
        event_id=_event_id(kind, event, raw, recipient),
        kind=_text(event.event_type or "unknown")[:20],
        outcome=outcome_of(kind, event, raw),
        recipient=recipient,
        job=job_for(kind, event, raw, recipient),
        provider_message_id=_text(event.message_id)[:255],
        description=_text(event.description or event.mta_response)[:2000],
        occurred_at=event.timestamp or timezone.now(),
        raw=raw,
    )
    try:
        with transaction.atomic():
            row.save()
    except IntegrityError:
        log.info("%s event %s received again; nothing changes", kind, row.event_id)
        return None
    if row.job_id is None:
        log.info("%s %s event for %s matches no job; stored", kind, row.kind, recipient or "?")
    else:
        _apply_to_job(row)
    if row.outcome and row.job_id is not None:
        # Only mail we sent to that address: an event about someone else's message (another
        # app on the same account, a forged body) must not suppress anyone.
        suppression.note_event(row)
        unsubscribe.note_event(row)
    return row


def _apply_to_job(row: DeliveryEvent) -> None:
    """The job's status first (a job still waiting becomes sent), then its delivery state."""
    accepted = row.kind not in NOT_ACCEPTED
    if accepted and outbox.record_sent_by_event(
        row.job_id, message_id=row.provider_message_id, provider_kind=row.provider_kind
    ):
        log.info("job %s sent: %s reported %s for it", row.job_id, row.provider_kind, row.kind)
    if row.outcome:
        record_delivery_state(row.job_id, row.outcome, at=row.occurred_at)


def unmatched_count() -> int:
    return DeliveryEvent.objects.filter(job__isnull=True).count()


def outcome_of(kind: str, event: AnymailTrackingEvent, raw: dict) -> str:
    if event.event_type == EventType.REJECTED:
        return REJECTED_OUTCOME.get(event.reject_reason, "")
    outcome = OUTCOME.get(event.event_type, "")
    if outcome == State.BOUNCED_HARD and _soft(kind, raw):
        return State.BOUNCED_SOFT
    return outcome


def _soft(kind: str, raw: dict) -> bool:
    """A bounce the provider calls temporary: SendGrid's "blocked", SES's transient ones."""
    if kind == "sendgrid":
        return str(raw.get("type", "")).lower() == "blocked"
    if kind == "ses":
        bounce = raw.get("bounce") or {}
        return bounce.get("bounceType") in ("Transient", "Undetermined")
    return False


def job_for(kind: str, event: AnymailTrackingEvent, raw: dict, recipient: str):
    metadata = event.metadata if isinstance(event.metadata, dict) else {}
    job_id = str(metadata.get(JOB_METADATA, "") or _ses_job_header(raw)).strip()
    job = None
    if JOB_ID.fullmatch(job_id):
        # Only what is compared here: the bodies are most of a job row's bytes.
        job = EmailJob.objects.filter(pk=int(job_id)).only("pk", "to_email").first()
    elif event.message_id:
        found = list(
            EmailJob.objects.filter(
                provider__kind=kind, provider_message_id=str(event.message_id)[:255]
            ).only("pk", "to_email")[:2]
        )
        job = found[0] if len(found) == 1 else None
    if job is not None and recipient and suppression.normalized(job.to_email) != recipient:
        return None
    return job


def _ses_job_header(raw: dict) -> str:
    mail = raw.get("mail")
    headers = (mail.get("headers") if isinstance(mail, dict) else None) or []
    for header in headers:
        if isinstance(header, dict) and str(header.get("name", "")).lower() == JOB_HEADER.lower():
            return str(header.get("value", ""))
    return ""


def _event_id(kind: str, event: AnymailTrackingEvent, raw: dict, recipient: str) -> str:
    """The provider's id for this event: SendGrid's ``sg_event_id``, Mailgun's event id, the
    SNS message id per recipient for SES (one notification can name several)."""
    if kind == "mailgun":
        event_id = (raw.get("event-data") or {}).get("id") or event.event_id
    elif kind == "ses":
        event_id = f"{event.event_id}:{recipient}" if event.event_id else ""
    else:
        event_id = event.event_id
    if not event_id:  # no id given: the payload itself identifies a redelivery
        body = json.dumps(raw, sort_keys=True, default=str).encode()
        event_id = "sha256:" + hashlib.sha256(body).hexdigest()
    return _text(event_id)[:255]


def _text(value) -> str:
    """A string PostgreSQL can store (no NUL characters)."""
    return str(value or "").replace("\x00", "")


def _raw(esp_event) -> dict:
    if hasattr(esp_event, "lists"):  # a form post (Mailgun's legacy webhooks)
        esp_event = {key: values for key, values in esp_event.lists()}
    if not isinstance(esp_event, dict):
        esp_event = {"event": esp_event}
    # JSON PostgreSQL can store: no NUL characters, escaped or not.
    return json.loads(json.dumps(esp_event, default=str).replace("\\u0000", ""))
