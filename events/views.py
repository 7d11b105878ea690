"""Organizer pages for events. Views parse, check ownership (404 otherwise), call one service."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils import timezone

from events import services
from events.errors import Refusal
from events.forms import EventForm
from events.responses import busy, cancelled_event, problem
from events.selectors import delivery_counts, event_for_organizer, events_for_dashboard
from invitations.organizer_views import safe_next
from invitations.selectors import (
    DELIVERY_FILTERS,
    RSVP_FILTERS,
    guest_counts,
    guest_list,
    guest_rows,
    recently_revoked,
    with_progress,
)
from reliability.locks import LockBusy

GUESTS_PER_PAGE = 200


def apply_errors(form: EventForm, error: ValidationError) -> None:
    for field, messages_ in error.message_dict.items():
        form.add_error(field if field in form.fields else None, messages_)


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    return render(request, "events/dashboard.html", {"events": events_for_dashboard(request.user)})


@login_required
def event_new(request: HttpRequest) -> HttpResponse:
    form = EventForm(request.POST or None, request.FILES or None, with_guests=True)
    if request.method == "POST" and form.is_valid():
        try:
            event, report = services.event_create(
                organizer=request.user, fields=form.event_fields(), guests=form.guest_list.guests
            )
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            messages.success(request, created_message(report, form.guest_list))
            return redirect("event_detail", event_id=event.pk)
    return render(
        request,
        "events/event_form.html",
        {"form": form, "creating": True},
        status=400 if form.errors else 200,
    )


def created_message(report, guest_list) -> str:
    text = "Event created."
    if report.invited:
        text += f" {len(report.invited)} invitation(s) are on their way."
    if guest_list.duplicates:
        text += f" {len(guest_list.duplicates)} duplicate line(s) in the list were skipped."
    return text


@login_required
def event_detail(request: HttpRequest, event_id: int) -> HttpResponse:
    event = event_for_organizer(request.user, event_id)
    rsvp = request.GET.get("rsvp", "")
    delivery = request.GET.get("delivery", "")
    search = request.GET.get("q", "").strip()[:200]
    now = timezone.now()
    guests = guest_list(event, rsvp=rsvp, delivery=delivery, search=search, now=now)
    page = Paginator(guests, GUESTS_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        **live_context(event, now),
        "page": page,
        "guests": with_progress(page.object_list, event, now),
        "recently_revoked": recently_revoked(event, now),
        "next": request.get_full_path(),
        "filters": {"rsvp": rsvp, "delivery": delivery, "q": search},
        "rsvp_choices": RSVP_FILTERS,
        "delivery_choices": DELIVERY_FILTERS,
        "poll_ms": settings.GPMAS_LIVE_POLL_MS,
    }
    return render(request, "events/event_detail.html", context)


def live_context(event, now) -> dict:
    return {
        "event": event,
        "counts": guest_counts(event),
        "delivery": delivery_counts([event], now)[event.pk],
    }


@login_required
def event_live(request: HttpRequest, event_id: int) -> JsonResponse:
    """The event page's counts and the rows of the guests it shows (``?ids=1,2``), rendered by
    the page's own templates: polled by the page to stay current without a reload. Queries do
    not grow with the guests asked for (at most a page of them)."""
    event = event_for_organizer(request.user, event_id)
    wanted = [int(part) for part in request.GET.get("ids", "").split(",") if part.isdigit()]
    now = timezone.now()
    context = live_context(event, now)
    context["next"] = safe_next(request, request.GET.get("next", ""), event.pk)
    guests = guest_rows(event, wanted[:GUESTS_PER_PAGE]) if wanted else []
    rows = {}
    for guest in with_progress(guests, event, now):
        rows[guest.pk] = render_to_string(
            "events/_guest_row.html", {**context, "guest": guest}, request=request
        )
    counts = render_to_string("events/_counts.html", context, request=request)
    return JsonResponse({"counts": counts, "rows": rows})


@login_required
def event_edit(request: HttpRequest, event_id: int) -> HttpResponse:
    event = event_for_organizer(request.user, event_id)
    if refused := cancelled_event(request, event, "A cancelled event cannot be changed."):
        return refused
    form = EventForm(request.POST or None, event=event)
    if request.method == "POST" and form.is_valid():
        try:
            result = services.event_update(event=event, fields=form.event_fields())
        except ValidationError as exc:
            apply_errors(form, exc)
        except Refusal as exc:
            return problem(request, "Not changed", str(exc), exc.status)
        except LockBusy:
            return busy(request)
        else:
            messages.success(request, updated_message(result))
            return redirect("event_detail", event_id=event.pk)
    context = {"form": form, "event": event, "creating": False}
    return render(request, "events/event_form.html", context, status=400 if form.errors else 200)


def updated_message(result: services.EventUpdate) -> str:
    if not result.changed:
        return "Nothing changed."
    text = "Event updated."
    if result.update_emails:
        text += f" {result.update_emails} accepted guest(s) get an updated calendar entry."
    if result.invitations_rewritten:
        text += f" {result.invitations_rewritten} unsent invitation(s) now carry the new details."
    if result.promoted:
        text += f" {result.promoted} waitlisted guest(s) got a seat."
    return text


@login_required
def event_cancel(request: HttpRequest, event_id: int) -> HttpResponse:
    event = event_for_organizer(request.user, event_id)
    if request.method == "POST":
        try:
            services.event_cancel(event=event)
        except Refusal as exc:
            return problem(request, "Not cancelled", str(exc), exc.status)
        except LockBusy:
            return busy(request)
        messages.success(request, "Event cancelled; its guests are being told.")
        return redirect("event_detail", event_id=event.pk)
    return render(request, "events/event_confirm.html", {"event": event, "action": "cancel"})


@login_required
def event_delete(request: HttpRequest, event_id: int) -> HttpResponse:
    event = event_for_organizer(request.user, event_id)
    if request.method == "POST":
        try:
            deletion = services.event_delete(event=event)
        except LockBusy:
            return busy(request)
        text = f"“{event.title}” deleted; {deletion.cancelled_jobs} unsent email(s) cancelled"
        messages.success(request, f"{text}, {deletion.notices} guest(s) notified.")
        return redirect("dashboard")
    return render(request, "events/event_confirm.html", {"event": event, "action": "delete"})
