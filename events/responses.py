"""Pages that say why a request changed nothing, with the status that fits."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from events.models import Event


def problem(request: HttpRequest, title: str, message: str, status: int) -> HttpResponse:
    return render(request, "problem.html", {"title": title, "message": message}, status=status)


def busy(request: HttpRequest) -> HttpResponse:
    """A Redis lock stayed busy (``LockBusy``): someone else is changing the same thing."""
    return problem(
        request,
        "Busy, try again",
        "Someone else is changing this right now. Nothing was changed: please try again in a "
        "moment.",
        409,
    )


def cancelled_event(request: HttpRequest, event: Event, message: str) -> HttpResponse | None:
    """Back to the event page with ``message`` if the event is cancelled (it takes no change)."""
    if not event.is_cancelled:
        return None
    messages.error(request, message)
    return redirect("event_detail", event_id=event.pk)
