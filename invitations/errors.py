"""Why an invitation change was refused; each error carries its HTTP status and a sentence for
the guest or organizer (``events.errors.Refusal``). Nothing was changed when one is raised."""

from events.errors import Refusal


class InvitationError(Refusal):
    pass


class InvitationNotFound(InvitationError):
    status = 404
    reason = "unknown"


class InvitationGone(InvitationError):
    """The link existed but no longer works: revoked, replaced, event cancelled/deleted/over."""

    status = 410


class AnswersClosed(InvitationError):
    status = 410
    reason = "deadline"


class NotEnoughSeats(InvitationError):
    status = 409
    reason = "full"


class SeatsConflict(InvitationError):
    """The seat counter refused a change the recount allowed: lost row lock or a bug."""

    status = 409
    reason = "conflict"
