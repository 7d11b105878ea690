"""Organizer pages for guests: invite (paste or upload, preview, confirm), resend, revoke, and the
guest list as CSV."""

from __future__ import annotations

import csv

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.text import slugify
from django.views.decorators.http import require_POST

from events.errors import Refusal
from events.models import Event
from events.responses import cancelled_event, problem
from events.selectors import event_for_organizer
from invitations import services
from invitations.forms import GuestListForm
from invitations.guestlist import GuestList, guests_parse_csv
from invitations.models import Invitation
from invitations.selectors import guest_export_rows, live_emails
from invitations.views import limited, too_many


@login_required
def event_invite(request: HttpRequest, event_id: int) -> HttpResponse:
    """Paste or upload, see a preview with counts and per-line errors, then confirm."""
    event = event_for_organizer(request.user, event_id)
    if refused := cancelled_event(request, event, "Nobody can be invited to a cancelled event."):
        return refused
    if request.method == "POST" and request.POST.get("action") == "confirm":
        return invite_confirm(request, event)
    form = GuestListForm(request.POST or None, request.FILES or None)
    preview = None
    if request.method == "POST" and form.is_valid():
        guest_list = form.guest_list
        already = live_emails(event)
        preview = {
            "list": guest_list,
            "new": [g for g in guest_list.guests if g.email not in already],
            "already": [g for g in guest_list.guests if g.email in already],
        }
        preview["canonical"] = GuestList(guests=preview["new"]).canonical_csv()
    status = 400 if form.errors else 200
    limits = {
        "lines": f"{settings.GPMAS_GUEST_LIST_MAX_LINES:,}",
        "megabytes": f"{settings.GPMAS_GUEST_LIST_MAX_BYTES / 1024**2:.3g}",
    }
    context = {"event": event, "form": form, "preview": preview, "limits": limits}
    return render(request, "invitations/invite.html", context, status=status)


def invite_confirm(request: HttpRequest, event: Event) -> HttpResponse:
    if limited(request, "invite", "GPMAS_INVITE_RATE_LIMIT", key="user"):
        return too_many(request, "invitations sent")
    guest_list = guests_parse_csv(request.POST.get("guests", "").encode(), sniff=False)
    if guest_list.refused or guest_list.errors or not guest_list.guests:
        return problem(
            request,
            "Guest list not accepted",
            "The confirmed list was empty or changed on the way. Nothing was sent: please "
            "preview the list again.",
            400,
        )
    try:
        report = services.invitations_invite(event=event, guests=guest_list.guests)
    except Refusal as exc:
        return problem(request, "Not invited", str(exc), exc.status)
    text = f"{len(report.invited)} invitation(s) are on their way."
    if report.already_invited:
        text += (
            f" {len(report.already_invited)} guest(s) had been invited already and were skipped."
        )
    messages.success(request, text)
    return redirect("event_detail", event_id=event.pk)


def safe_next(request: HttpRequest, wanted: str, event_id: int) -> str:
    """``wanted`` if it is the event's page of this site (with its filters), else that page."""
    page = reverse("event_detail", args=[event_id])
    safe = url_has_allowed_host_and_scheme(wanted, allowed_hosts={request.get_host()})
    return wanted if safe and wanted.startswith(page) else page


def back_to_event(request: HttpRequest, event_id: int) -> HttpResponse:
    """Back to the guest list, keeping its filters; only ever to that page of this site."""
    return redirect(safe_next(request, request.POST.get("next", ""), event_id))


def organizer_invitation(request: HttpRequest, event_id: int, invitation_id: int) -> Invitation:
    event = event_for_organizer(request.user, event_id)
    invitation = get_object_or_404(Invitation, pk=invitation_id, event=event)
    invitation.event = event
    return invitation


@login_required
def invitation_resend(request: HttpRequest, event_id: int, invitation_id: int) -> HttpResponse:
    """GET: what a resend will do; POST: do it."""
    if request.method != "POST":
        return confirm_page(request, event_id, invitation_id, "resend")
    if limited(request, "invite", "GPMAS_INVITE_RATE_LIMIT", key="user"):
        return too_many(request, "invitations sent")
    done = "A new invitation link is on its way to {email}; the link sent before no longer works."
    return act_on_invitation(
        request,
        event_id,
        invitation_id,
        services.invitation_resend,
        refused="Not resent",
        done=done,
    )


@login_required
def invitation_revoke(request: HttpRequest, event_id: int, invitation_id: int) -> HttpResponse:
    """GET: what a revoke will do; POST: do it (undo stays possible for a while)."""
    if request.method != "POST":
        return confirm_page(request, event_id, invitation_id, "revoke")
    done = "The invitation of {email} was revoked. To take it back: Undo, under “Revoked just now”."
    done = done if settings.GPMAS_REVOKE_UNDO_SECONDS else "The invitation of {email} was revoked."
    return act_on_invitation(
        request,
        event_id,
        invitation_id,
        services.invitation_revoke,
        refused="Not revoked",
        done=done,
    )


@login_required
@require_POST
def invitation_unrevoke(request: HttpRequest, event_id: int, invitation_id: int) -> HttpResponse:
    done = "The invitation of {email} is back, as it was before the revoke."
    return act_on_invitation(
        request,
        event_id,
        invitation_id,
        services.invitation_unrevoke,
        refused="Not undone",
        done=done,
    )


def confirm_page(request: HttpRequest, event_id: int, invitation_id: int, action: str):
    invitation = organizer_invitation(request, event_id, invitation_id)
    event = invitation.event
    if invitation.is_revoked:
        title = "Not resent" if action == "resend" else "Already revoked"
        return problem(request, title, "This invitation was revoked already.", 409)
    context = {
        "event": event,
        "invitation": invitation,
        "action": action,
        "next": safe_next(request, request.GET.get("next", ""), event_id),
        "undo_minutes": max(1, settings.GPMAS_REVOKE_UNDO_SECONDS // 60),
        "undo_possible": settings.GPMAS_REVOKE_UNDO_SECONDS > 0,
    }
    return render(request, "invitations/confirm_action.html", context)


def act_on_invitation(
    request: HttpRequest, event_id: int, invitation_id: int, action, *, refused: str, done: str
) -> HttpResponse:
    """Run an organizer's action on one of their invitations; back to the event page."""
    invitation = organizer_invitation(request, event_id, invitation_id)
    try:
        action(invitation=invitation)
    except Refusal as exc:
        return problem(request, refused, str(exc), exc.status)
    messages.success(request, done.format(email=invitation.email))
    return back_to_event(request, event_id)


class _Echo:
    def write(self, value: str) -> str:
        return value


def spreadsheet_safe(value: str) -> str:
    """Spreadsheets run a cell that starts with = + - @ as a formula: quote it."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


@login_required
def guests_csv(request: HttpRequest, event_id: int) -> HttpResponse:
    event = event_for_organizer(request.user, event_id)
    writer = csv.writer(_Echo())
    rows = (
        writer.writerow([spreadsheet_safe(cell) for cell in row])
        for row in guest_export_rows(event)
    )
    response = StreamingHttpResponse(rows, content_type="text/csv; charset=utf-8")
    filename = f"guests-{event.pk}-{slugify(event.title)[:40] or 'event'}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
