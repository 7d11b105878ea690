"""The organizer's display name: what guests read ("Olivia Park invites you"), set on the first
login and changed on /profile/. ``DisplayNameRequired`` sends an organizer without one there."""

from __future__ import annotations

import re
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ObjectDoesNotExist
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from events.models import OrganizerProfile

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]")


def display_name(user) -> str:
    """The name guests see; the full name or the username only for an account that never set
    one (made in the admin or a shell: the organizer pages ask for it first)."""
    try:
        return user.organizer_profile.display_name
    except ObjectDoesNotExist:
        return user.get_full_name() or user.get_username()


def has_display_name(user) -> bool:
    try:
        return bool(user.organizer_profile.display_name)
    except ObjectDoesNotExist:
        return False


class ProfileForm(forms.Form):
    required_css_class = "required"

    display_name = forms.CharField(
        label="Your name, as guests see it",
        max_length=100,
        help_text="Invitations say “Olivia Park invites you” and come from “Olivia Park via "
        "GPMAS”.",
        widget=forms.TextInput(attrs={"autocomplete": "name"}),
    )

    def clean_display_name(self) -> str:
        name = " ".join(self.cleaned_data["display_name"].split())
        if _CONTROL.search(name):
            raise forms.ValidationError("The name must not contain control characters.")
        if "<" in name or ">" in name:
            raise forms.ValidationError("The name must not contain < or >.")
        return name


def safe_next(request: HttpRequest) -> str:
    wanted = request.POST.get("next") or request.GET.get("next") or ""
    if wanted and url_has_allowed_host_and_scheme(
        wanted, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return wanted
    return reverse("dashboard")


@login_required
def profile(request: HttpRequest) -> HttpResponse:
    user = request.user
    first_time = not has_display_name(user)
    initial = {"display_name": display_name(user) if not first_time else user.get_full_name()}
    form = ProfileForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        name = form.cleaned_data["display_name"]
        OrganizerProfile.objects.update_or_create(user=user, defaults={"display_name": name})
        messages.success(request, f"Saved. Guests see your name as “{name}”.")
        return redirect(safe_next(request))
    context = {"form": form, "first_time": first_time, "next": safe_next(request)}
    return render(request, "events/profile.html", context, status=400 if form.errors else 200)


def exempt_paths() -> tuple[str, ...]:
    """Pages an organizer without a display name may still open: the profile page itself,
    logging in and out, the admin and operator pages, the guests' pages (and the unsubscribe
    link, which a mail client posts to and which must never redirect), health checks, the
    favicon (a browser fetches it for every page: a redirect would serve HTML as the icon) and the
    providers' webhooks."""
    return (
        reverse("profile"),
        reverse("login"),
        reverse("logout"),
        reverse("admin:index"),
        "/ops/",
        "/i/",
        "/u/",
        reverse("healthz"),
        "/static/",
        "/favicon.",
        "/webhooks/",
    )


class DisplayNameRequired:
    """A logged-in organizer with no display name goes to /profile/ first (``?next=`` brings
    them back): no invitation ever goes out under a username. One query per organizer page."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if (
            user is not None
            and user.is_authenticated
            and not request.path.startswith(exempt_paths())
            and not has_display_name(user)
        ):
            query = urlencode({"next": request.get_full_path()})
            return redirect(f"{reverse('profile')}?{query}")
        return self.get_response(request)
