"""The guests' emails, rendered when the job is written (a job never needs its event to exist).

Each returns an ``EmailDraft``. Its idempotency key names the action that sent it, so a retried
action finds the job it wrote instead of writing a second one.
"""

from __future__ import annotations

import datetime as dt
import email.utils
from email.headerregistry import Address

from django.conf import settings
from django.core.exceptions import ValidationError
from django.template.loader import render_to_string

from delivery import unsubscribe
from delivery.models import EmailJob
from delivery.services import EmailDraft
from delivery.validation import check_address
from events import ics
from events.display import format_moment, format_when
from events.models import Event
from invitations.mail_merge import MailMerges
from invitations.models import Invitation
from invitations.tokens import unsubscribe_url

Kind = EmailJob.Kind

# The kinds whose templates read no per-guest value but ``mail_merge.FIELDS``: a batch renders
# them once (``invitations.mail_merge``).
MERGED_KINDS = frozenset({Kind.INVITATION})


def reply_to(event: Event) -> dict[str, str]:
    """Replies go to the organizer, not to the sending address."""
    address = event.organizer.email.strip()
    try:
        check_address(address, "reply_to")
    except ValidationError:
        return {}
    return {"Reply-To": address}


def sender(event: Event) -> str:
    """``Olivia Park via GPMAS <invitations@…>``: the organizer's name, the site's own address
    (mail from the organizer's domain would fail SPF/DMARC; replies go to them by Reply-To).
    Written as people read it; the message encodes a non-ASCII name (delivery/message.py)."""
    site_name, address = email.utils.parseaddr(settings.GPMAS_DEFAULT_FROM_EMAIL)
    name = f"{ics.organizer_name(event)} via {site_name or 'GPMAS'}"
    return str(Address(display_name=name, addr_spec=address))


def render(kind: str, subject: str, context: dict) -> dict[str, str]:
    context = {"subject": subject, "site_url": settings.GPMAS_SITE_URL.rstrip("/"), **context}

    def render_each(context: dict) -> dict[str, str]:
        return {
            "headers": context["reply_headers"],
            "subject": subject,
            "text_body": render_to_string(f"invitations/email/{kind}.txt", context),
            "html_body": render_to_string(f"invitations/email/{kind}.html", context),
        }

    merges = context.get("merges")
    if merges is not None and kind in MERGED_KINDS:
        return merges.render(kind, subject, context, render_each)
    return render_each(context)


def event_context(event: Event) -> dict:
    """What every guest's email about this event shares; build it once for a batch."""
    return {
        "event": event,
        "organizer_name": ics.organizer_name(event),
        "when": format_when(event),
        "answers_close": format_moment(event, event.answers_close_at),
        "reply_headers": reply_to(event),
        "sender": sender(event),
    }


def batch_context(event: Event) -> dict:
    """``event_context`` for many guests at once: their invitations are rendered once."""
    return {**event_context(event), "merges": MailMerges()}


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


def guest_email(
    kind: str,
    event: Event,
    invitation: Invitation,
    *,
    key: str,
    subject: str,
    context: dict,
    mailing: bool = False,
    **fields,
) -> EmailDraft:
    """The shape every guest email shares: to the guest, on the event's topic (unless ``fields``
    say otherwise), rendered from the kind's two templates. A ``mailing`` (invitations and
    reminders, not the answers to what the guest did) is on the organizer's list: it carries the
    one-click unsubscribe headers (RFC 8058) and link, and is not sent to an address that
    unsubscribed from them."""
    fields.setdefault("topic", event.topic)
    fields.setdefault("from_email", context["sender"])
    if mailing:
        url = unsubscribe_url(event.organizer_id, invitation.email)
        context = {**context, "unsubscribe_url": url}
        fields["list_owner_id"] = event.organizer_id
    rendered = render(kind, subject, context)
    if mailing:
        rendered["headers"] = {**rendered["headers"], **unsubscribe.headers(url)}
    return EmailDraft(
        kind=kind, to_email=invitation.email, idempotency_key=key, **fields, **rendered
    )


def invitation_draft(
    event: Event, invitation: Invitation, *, link: str, shared: dict | None = None
) -> EmailDraft:
    # One email per token: a resend (new token) is a new email, a retry is not.
    key = f"invitation:{event.pk}:{invitation.token_hash[:32]}"
    context = base_context(event, invitation, link, shared)
    return guest_email(
        Kind.INVITATION,
        event,
        invitation,
        key=key,
        subject=f"Invitation: {event.title}",
        context=context,
        mailing=True,
    )


def confirmation_draft(event: Event, invitation: Invitation, *, link: str = "") -> EmailDraft:
    key = f"confirmation:{invitation.pk}:{invitation.response_version}"
    return guest_email(
        Kind.CONFIRMATION,
        event,
        invitation,
        key=key,
        subject=f"You're going: {event.title}",
        context=base_context(event, invitation, link),
        ics=calendar(event, invitation, ics.REQUEST, event.sequence),
    )


def waitlist_draft(
    event: Event, invitation: Invitation, *, position: int, link: str = ""
) -> EmailDraft:
    key = f"waitlist:{invitation.pk}:{invitation.response_version}"
    context = {**base_context(event, invitation, link), "position": position}
    return guest_email(
        Kind.WAITLIST,
        event,
        invitation,
        key=key,
        subject=f"On the waitlist: {event.title}",
        context=context,
    )


def promotion_draft(event: Event, invitation: Invitation) -> EmailDraft:
    key = f"promotion:{invitation.pk}:{invitation.response_version}"
    return guest_email(
        Kind.PROMOTION,
        event,
        invitation,
        key=key,
        subject=f"A seat is yours: {event.title}",
        context=base_context(event, invitation),
        ics=calendar(event, invitation, ics.REQUEST, event.sequence),
    )


def update_draft(
    event: Event, invitation: Invitation, *, changes: list[str], shared: dict | None = None
) -> EmailDraft:
    key = f"update:{invitation.pk}:{event.sequence}"
    context = {**base_context(event, invitation, shared=shared), "changes": changes}
    return guest_email(
        Kind.UPDATE,
        event,
        invitation,
        key=key,
        subject=f"Updated: {event.title}",
        context=context,
        ics=calendar(event, invitation, ics.REQUEST, event.sequence),
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
    key = f"cancellation:{invitation.pk}:{sequence}"
    context = {**base_context(event, invitation, shared=shared), "deleted": deleted}
    return guest_email(
        Kind.CANCELLATION,
        event,
        invitation,
        key=key,
        subject=f"Cancelled: {event.title}",
        context=context,
        topic=event.notice_topic,
        ics=calendar(event, invitation, ics.CANCEL, sequence) if accepted else "",
    )


def reminder_draft(
    event: Event, invitation: Invitation, *, send_at: dt.datetime, shared: dict | None = None
) -> EmailDraft:
    key = f"reminder:{invitation.pk}:{event.sequence}:{invitation.response_version}"
    return guest_email(
        Kind.REMINDER,
        event,
        invitation,
        key=key,
        subject=f"Reminder: {event.title}",
        context=base_context(event, invitation, shared=shared),
        not_before=send_at,
        mailing=True,
    )
