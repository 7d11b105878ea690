"""The guests' emails, rendered when the job is written (a job never needs its event to exist).

Each returns an ``EmailDraft``. Its idempotency key names the action that sent it, so a retried
action finds the job it wrote instead of writing a second one.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.core.exceptions import ValidationError
from django.template.loader import render_to_string

from delivery.models import EmailJob
from delivery.services import EmailDraft
from delivery.validation import check_address
from events import ics
from events.display import format_moment, format_when
from events.models import Event
from invitations.models import Invitation

Kind = EmailJob.Kind


def reply_to(event: Event) -> dict[str, str]:
    """Replies go to the organizer, not to the sending address."""
    address = event.organizer.email.strip()
    try:
        check_address(address, "reply_to")
    except ValidationError:
        return {}
    return {"Reply-To": address}


def render(kind: str, subject: str, context: dict) -> dict[str, str]:
    context = {"subject": subject, "site_url": settings.GPMAS_SITE_URL.rstrip("/"), **context}
    return {
        "headers": context["reply_headers"],
        "subject": subject,
        "text_body": render_to_string(f"invitations/email/{kind}.txt", context),
        "html_body": render_to_string(f"invitations/email/{kind}.html", context),
    }


def event_context(event: Event) -> dict:
    """What every guest's email about this event shares; build it once for a batch."""
    return {
        "event": event,
        "organizer_name": ics.organizer_name(event),
        "when": format_when(event),
        "answers_close": format_moment(event, event.answers_close_at),
        "reply_headers": reply_to(event),
    }


def base_context(
    event: Event, invitation: Invitation, link: str = "", shared: dict | None = None
) -> dict:
    return {
        **(shared or event_context(event)),
        "invitation": invitation,
        "guest_name": invitation.name,
        "link": link,
    }


def calendar(event: Event, invitation: Invitation, method: str, sequence: int) -> str:
    return ics.event_calendar(
        event=event,
        uid=invitation.calendar_uid,
        method=method,
        sequence=sequence,
        attendee_email=invitation.email,
        attendee_name=invitation.name,
        party_size=invitation.party_size,
    )


def invitation_draft(
    event: Event, invitation: Invitation, *, link: str, shared: dict | None = None
) -> EmailDraft:
    context = base_context(event, invitation, link, shared)
    return EmailDraft(
        kind=Kind.INVITATION,
        to_email=invitation.email,
        topic=event.topic,
        # One email per token: a resend (new token) is a new email, a retry is not.
        idempotency_key=f"invitation:{event.pk}:{invitation.token_hash[:32]}",
        **render("invitation", f"Invitation: {event.title}", context),
    )


def confirmation_draft(event: Event, invitation: Invitation, *, link: str = "") -> EmailDraft:
    return EmailDraft(
        kind=Kind.CONFIRMATION,
        to_email=invitation.email,
        topic=event.topic,
        idempotency_key=f"confirmation:{invitation.pk}:{invitation.response_version}",
        ics=calendar(event, invitation, ics.REQUEST, event.sequence),
        **render(
            "confirmation", f"You're going: {event.title}", base_context(event, invitation, link)
        ),
    )


def waitlist_draft(
    event: Event, invitation: Invitation, *, position: int, link: str = ""
) -> EmailDraft:
    context = {**base_context(event, invitation, link), "position": position}
    return EmailDraft(
        kind=Kind.WAITLIST,
        to_email=invitation.email,
        topic=event.topic,
        idempotency_key=f"waitlist:{invitation.pk}:{invitation.response_version}",
        **render("waitlist", f"On the waitlist: {event.title}", context),
    )


def promotion_draft(event: Event, invitation: Invitation) -> EmailDraft:
    return EmailDraft(
        kind=Kind.PROMOTION,
        to_email=invitation.email,
        topic=event.topic,
        idempotency_key=f"promotion:{invitation.pk}:{invitation.response_version}",
        ics=calendar(event, invitation, ics.REQUEST, event.sequence),
        **render("promotion", f"A seat is yours: {event.title}", base_context(event, invitation)),
    )


def update_draft(
    event: Event, invitation: Invitation, *, changes: list[str], shared: dict | None = None
) -> EmailDraft:
    context = {**base_context(event, invitation, shared=shared), "changes": changes}
    return EmailDraft(
        kind=Kind.UPDATE,
        to_email=invitation.email,
        topic=event.topic,
        idempotency_key=f"update:{invitation.pk}:{event.sequence}",
        ics=calendar(event, invitation, ics.REQUEST, event.sequence),
        **render("update", f"Updated: {event.title}", context),
    )


def cancellation_draft(
    event: Event,
    invitation: Invitation,
    *,
    sequence: int,
    deleted: bool,
    shared: dict | None = None,
) -> EmailDraft:
    # Only accepted guests have the event in their calendar, so only they get a CANCEL.
    accepted = invitation.rsvp == Invitation.Rsvp.ACCEPTED
    context = {**base_context(event, invitation, shared=shared), "deleted": deleted}
    return EmailDraft(
        kind=Kind.CANCELLATION,
        to_email=invitation.email,
        topic=event.notice_topic,
        idempotency_key=f"cancellation:{invitation.pk}:{sequence}",
        ics=calendar(event, invitation, ics.CANCEL, sequence) if accepted else "",
        **render("cancellation", f"Cancelled: {event.title}", context),
    )


def reminder_draft(
    event: Event, invitation: Invitation, *, send_at: dt.datetime, shared: dict | None = None
) -> EmailDraft:
    return EmailDraft(
        kind=Kind.REMINDER,
        to_email=invitation.email,
        topic=event.topic,
        idempotency_key=(
            f"reminder:{invitation.pk}:{event.sequence}:{invitation.response_version}"
        ),
        not_before=send_at,
        **render(
            "reminder", f"Reminder: {event.title}", base_context(event, invitation, shared=shared)
        ),
    )
