"""One-click unsubscribe (RFC 8058) from an organizer's invitations and reminders: the link in
their ``List-Unsubscribe`` header and at the foot of the email.

A mail client posts to the link itself (``List-Unsubscribe=One-Click``, form-encoded or
multipart) without cookies or a CSRF token, so this one view is CSRF-exempt: the signed token in
the URL is the credential, as on the guest page. The POST answers 200 with a short page, never a
redirect. A GET (a guest's click, or a mail scanner opening the link) only asks, with a button
that posts to the same URL. A token this site did not sign answers 400 and changes nothing.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from delivery import unsubscribe
from events.profile import display_name

TEMPLATE = "invitations/unsubscribe.html"


@csrf_exempt
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def guest_unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    try:
        organizer_id, address = unsubscribe.read_token(token)
    except unsubscribe.BadToken:
        return page(request, "refused", status=400)
    organizer = get_user_model().objects.filter(pk=organizer_id).first()
    context = {
        "address": address,
        "organizer_name": display_name(organizer) if organizer else "this organizer",
    }
    if organizer is None:  # the account is gone, and so is all its mail
        return page(request, "done", context)
    if request.method == "POST":
        unsubscribe.unsubscribe(organizer_id, address, source=source(request))
        return page(request, "done", context)
    done = unsubscribe.is_unsubscribed(organizer_id, address)
    return page(request, "done" if done else "ask", context)


def source(request: HttpRequest) -> str:
    """``one-click`` from a mail client (its body says ``List-Unsubscribe=One-Click``), ``page``
    from the confirm button. The body is not required: the signed link is the request, so a
    body the parser refuses (a multipart without its boundary) still unsubscribes."""
    try:
        return "one-click" if "List-Unsubscribe" in request.POST else "page"
    except MultiPartParserError:
        return "one-click"


def page(request: HttpRequest, state: str, context: dict | None = None, status: int = 200):
    response = render(request, TEMPLATE, {"state": state, **(context or {})}, status=status)
    response["X-Robots-Tag"] = "noindex"
    return response
