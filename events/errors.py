"""Refusals of the domain: each carries the HTTP status and a sentence for the person who asked,
so a view can answer any of them the same way (``events.responses.problem``)."""


class Refusal(Exception):
    status = 400
    reason = "invalid"

    def __init__(self, message: str = "", *, reason: str = "") -> None:
        self.reason = reason or self.reason
        super().__init__(message or self.reason)


class EventClosed(Refusal):
    """The event is gone, cancelled or over: it takes no change of guests."""

    status = 409
    reason = "closed"
