"""Pages that say why a request changed nothing, with the status that fits."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


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
