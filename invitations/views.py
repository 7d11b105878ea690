"""The guest's own page, and the rate limits the guest and organizer pages share. The organizer's
pages for guests (invite, resend, revoke, export) are in invitations/organizer_views.py.

The guest's link is opened by mail scanners too: GET only shows, and only a POST with a CSRF
token changes anything. Every refusal is a page that says why, with the status that fits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.text import slugify
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST, require_safe
from django_ratelimit.core import is_ratelimited

from events import ics
from events.errors import EventClosed, Refusal
from events.ics import organizer_name
from events.responses import busy, problem
from invitations import calendar_links, services
from invitations.forms import AnswerForm
from invitations.models import Invitation
from reliability.locks import LockBusy

log = logging.getLogger(__name__)

GONE_TITLES = {
    "unknown": "Invitation not found",
    "revoked": "Invitation withdrawn",
    "replaced": "This link was replaced",
    "event_deleted": "Event deleted",
    "event_cancelled": "Event cancelled",
    "event_ended": "Event over",
    "deadline": "Answers are closed",
    "full": "Not enough seats",
    "conflict": "Busy, try again",
    "closed": "Not possible",
    "party_size": "Check your answer",
    "not_going": "Not in your calendar yet",
}


def limited(request: HttpRequest, group: str, rate_setting: str, key: str = "ip") -> bool:
    """Count this request against a rate; True when over it. A cache outage lets it through:
    the guest endpoints keep working on the database alone, like the rest of the site."""
    try:
        return is_ratelimited(
            request,
            group=group,
            key=key,
            rate=getattr(settings, rate_setting),
            method="POST",
            increment=True,
        )
    except Exception:  # Redis (the cache) unreachable
        log.warning("rate limit %s not checked: cache unavailable", group, exc_info=True)
        return False


def too_many(request: HttpRequest, what: str = "answers from your address") -> HttpResponse:
    return problem(
        request,
        "Too many requests",
        f"Too many {what} in a short time. Nothing was changed: please wait and try again.",
        429,
    )


# --- Guest -------------------------------------------------------------------------------------


def guest_problem(request: HttpRequest, exc: Refusal) -> HttpResponse:
    response = render(
        request,
        "invitations/guest_problem.html",
        {"title": GONE_TITLES.get(exc.reason, "Not possible"), "message": str(exc)},
        status=exc.status,
    )
    response["X-Robots-Tag"] = "noindex"
    return response


def guest_page(
    request: HttpRequest, token: str, invitation: Invitation, *, form=None, status: int = 200
) -> HttpResponse:
    event = invitation.event
    context = {
        "token": token,
        "invitation": invitation,
        "event": event,
        "organizer_name": organizer_name(event),
        "form": form
        or AnswerForm(
            max_party_size=event.max_party_size,
            initial={"party_size": invitation.party_size},
        ),
        "answers_open": event.answers_open(),
        "map_url": calendar_links.map_url(event),
        "calendar": guest_calendar_links(event)
        if invitation.rsvp == Invitation.Rsvp.ACCEPTED
        else None,
        "position": services.waitlist_position(invitation)
        if invitation.rsvp == Invitation.Rsvp.WAITLISTED
        else 0,
    }
    response = render(request, "invitations/guest_invitation.html", context, status=status)
    response["X-Robots-Tag"] = "noindex"
    return response


@never_cache
@require_safe
def guest_invitation(request: HttpRequest, token: str) -> HttpResponse:
    """Show the event and the current answer. Changes nothing, whatever opens it."""
    try:
        invitation = services.invitation_by_token(token)
        services.event_check_open(invitation.event)
    except Refusal as exc:
        return guest_problem(request, exc)
    return guest_page(request, token, invitation)


def guest_calendar_links(event) -> dict[str, str]:
    return {
        "google": calendar_links.google_calendar_url(event),
        "outlook": calendar_links.outlook_calendar_url(event),
    }


@never_cache
@require_safe
def guest_calendar(request: HttpRequest, token: str) -> HttpResponse:
    """The event as an .ics file, for a guest who accepted. A GET: it changes nothing."""
    try:
        invitation = services.invitation_by_token(token)
        services.event_check_open(invitation.event)
    except Refusal as exc:
        return guest_problem(request, exc)
    if invitation.rsvp != Invitation.Rsvp.ACCEPTED:
        message = "The calendar file is there once you have accepted the invitation."
        return guest_problem(request, EventClosed(message, reason="not_going"))
    event = invitation.event
    body = ics.event_file(event=event, uid=invitation.calendar_uid, sequence=event.sequence)
    response = HttpResponse(body, content_type="text/calendar; charset=utf-8")
    filename = f"{slugify(event.title)[:40] or 'event'}.ics"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["X-Robots-Tag"] = "noindex"
    return response


@never_cache
@require_POST
def guest_accept(request: HttpRequest, token: str) -> HttpResponse:
    if limited(request, "guest-answer", "GPMAS_GUEST_RATE_LIMIT"):
        return too_many(request)
    try:
        invitation = services.invitation_by_token(token)
    except Refusal as exc:
        return guest_problem(request, exc)
    form = AnswerForm(request.POST, max_party_size=invitation.event.max_party_size)
    if not form.is_valid():
        return guest_page(request, token, invitation, form=form, status=400)
    party_size = form.cleaned_data["party_size"]
    return answered(
        request, token, lambda: services.invitation_accept(token=token, party_size=party_size)
    )


@never_cache
@require_POST
def guest_decline(request: HttpRequest, token: str) -> HttpResponse:
    if limited(request, "guest-answer", "GPMAS_GUEST_RATE_LIMIT"):
        return too_many(request)
    return answered(request, token, lambda: services.invitation_decline(token=token))


def answered(
    request: HttpRequest, token: str, answer: Callable[[], services.Answer]
) -> HttpResponse:
    """Record the guest's answer; back to their page with what happened, or why not."""
    try:
        outcome = answer().outcome
    except Refusal as exc:
        return guest_problem(request, exc)
    except LockBusy:
        return busy(request)
    messages.success(request, ANSWER_MESSAGES[outcome])
    return redirect("guest_invitation", token=token)


ANSWER_MESSAGES = {
    "accepted": "Thank you: you're going. A confirmation with a calendar invitation is on its way.",
    "waitlisted": "The event is full: you're on the waitlist. We'll email you if a seat frees up.",
    "declined": "Thank you for letting us know: you declined.",
    "unchanged": "Your answer was already saved; nothing changed.",
}
