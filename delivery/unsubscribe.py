"""One-click unsubscribe (RFC 8058; docs/architecture.md, "Delivery events"): an address can ask
for no more of one organizer's invitations and reminders.

The link carries a signed token (``django.core.signing``, salted; no expiry, old emails keep
working; ``SECRET_KEY_FALLBACKS`` keeps it valid across a key rotation) naming the organizer and
the address, so nothing secret is stored. ``delivery.services.email_enqueue`` reads the
unsubscribes of the jobs that carry a ``list_owner`` (once per call) and records those jobs as
``suppressed``; a new unsubscribe does the same to the address's waiting jobs of that organizer.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.core import signing
from django.db import IntegrityError, transaction

from delivery import outbox
from delivery.models import DeliveryEvent, EmailJob, Unsubscribe

SALT = "gpmas.delivery.unsubscribe"
HEADER_POST = "List-Unsubscribe=One-Click"
REASON = "not sent: the guest unsubscribed from this organizer's invitations and reminders"


class BadToken(ValueError):
    """A token that was not made here, or was changed since."""


def normalized(address: str) -> str:
    return (address or "").strip().lower()


def token_for(organizer_id: int, address: str) -> str:
    return signing.Signer(salt=SALT).sign_object([organizer_id, normalized(address)])


def read_token(token: str) -> tuple[int, str]:
    """(organizer id, lower-cased address); ``BadToken`` for anything this site did not sign."""
    try:
        value = signing.Signer(salt=SALT).unsign_object(token)
    except (signing.BadSignature, ValueError, TypeError, UnicodeError) as exc:
        raise BadToken("not a valid unsubscribe link") from exc
    match value:
        case [int() as organizer_id, str() as address] if address and organizer_id > 0:
            return organizer_id, address
    raise BadToken("not a valid unsubscribe link")


def headers(url: str) -> dict[str, str]:
    """The two headers of RFC 8058 for an email whose unsubscribe link is ``url``."""
    return {"List-Unsubscribe": f"<{url}>", "List-Unsubscribe-Post": HEADER_POST}


def is_unsubscribed(organizer_id: int, address: str) -> bool:
    return Unsubscribe.objects.filter(
        organizer_id=organizer_id, address=normalized(address)
    ).exists()


def unsubscribe(organizer_id: int, address: str, *, source: str) -> bool:
    """Record the unsubscribe (again: harmless) and suppress the address's waiting jobs from
    that organizer. True when it was new."""
    address = normalized(address)
    try:
        with transaction.atomic():
            _, new = Unsubscribe.objects.get_or_create(
                organizer_id=organizer_id, address=address, defaults={"source": source[:40]}
            )
    except IntegrityError:  # the same unsubscribe, posted twice at once
        new = False
    waiting = EmailJob.objects.filter(list_owner_id=organizer_id, to_email__iexact=address)
    outbox.suppress_waiting(waiting, reason=REASON)
    return new


def note_event(event: DeliveryEvent) -> bool:
    """A provider reports that the recipient unsubscribed (its own link, or a mailbox's
    unsubscribe button it handled): the same as our link, for the job's list owner. True when
    the event was one; an event for mail with no list owner changes nothing."""
    if event.outcome != EmailJob.DeliveryState.UNSUBSCRIBED or not event.job_id:
        return False
    owner = EmailJob.objects.filter(pk=event.job_id).values_list("list_owner_id", flat=True)
    owner_id = owner.first()
    if not owner_id or not event.recipient:
        return False
    unsubscribe(owner_id, event.recipient, source=f"webhook {event.provider_kind}")
    return True


def blocked(jobs: Iterable[EmailJob]) -> set[tuple[int, str]]:
    """Of the jobs' (list owner, lower-cased address) pairs, those unsubscribed. One query, none
    when no job has a list owner."""
    pairs = {(job.list_owner_id, normalized(job.to_email)) for job in jobs if job.list_owner_id}
    if not pairs:
        return set()
    rows = Unsubscribe.objects.filter(
        organizer_id__in={owner for owner, _ in pairs},
        address__in={address for _, address in pairs},
    ).values_list("organizer_id", "address")
    return pairs & set(rows)
