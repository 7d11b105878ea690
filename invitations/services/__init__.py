"""Invitation writes, one transaction each (docs/architecture.md, "Invitations"):

- ``answers``: guests accept (or join the waitlist) and decline; promotions from the waitlist;
- ``organizer``: an organizer invites, resends and revokes;
- ``event_changes``: what guests get when their event changes, is cancelled or deleted;
- ``seats``: the seat counter and the waitlist order, under the event's row lock;
- ``guest_mail``: the emails an invitation owns, written to the outbox and cancelled when
  superseded.

The refusals they raise are in ``invitations.errors``.
"""

from invitations.services.answers import (
    Answer,
    event_check_open,
    invitation_accept,
    invitation_by_token,
    invitation_decline,
    waitlist_promote,
)
from invitations.services.event_changes import (
    guests_notify_cancellation,
    guests_notify_update,
    invitations_refresh_unsent,
    tokens_retire_for_event,
)
from invitations.services.organizer import (
    InviteReport,
    invitation_resend,
    invitation_revoke,
    invitations_invite,
)
from invitations.services.seats import seats_recount, waitlist_position
from invitations.services.undo import UndoRefused, invitation_unrevoke

__all__ = [
    "Answer",
    "InviteReport",
    "event_check_open",
    "guests_notify_cancellation",
    "guests_notify_update",
    "invitation_accept",
    "invitation_by_token",
    "invitation_decline",
    "invitation_resend",
    "invitation_revoke",
    "invitation_unrevoke",
    "UndoRefused",
    "invitations_invite",
    "invitations_refresh_unsent",
    "seats_recount",
    "tokens_retire_for_event",
    "waitlist_position",
    "waitlist_promote",
]
