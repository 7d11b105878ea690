"""The event form. Times are typed in the event's own time zone and stored in UTC."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.utils import timezone

from events.display import local
from events.models import Event
from events.services import MAX_CAPACITY, MAX_PLUS_ONES, EventFields, known_time_zones
from events.time_zones import time_zone_choices
from invitations.forms import GuestListFields

LOCAL_FORMAT = "%Y-%m-%dT%H:%M"


class LocalDateTimeInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self) -> None:
        super().__init__(format=LOCAL_FORMAT)


def local_datetime_field(label: str, *, required: bool = True, help_text: str = "") -> forms.Field:
    return forms.DateTimeField(
        label=label,
        required=required,
        help_text=help_text,
        widget=LocalDateTimeInput(),
        input_formats=[LOCAL_FORMAT, "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"],
    )


class EventForm(GuestListFields, forms.Form):
    required_css_class = "required"  # marked with an asterisk (templates/base.html)
    field_order = [
        "title",
        "description",
        "location",
        "timezone",
        "starts_at",
        "ends_at",
        "capacity",
        "plus_ones_allowed",
        "rsvp_deadline",
        "guests",
        "guests_file",
    ]

    title = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 4}))
    location = forms.CharField(max_length=300, required=False)
    timezone = forms.ChoiceField(
        label="Time zone",
        initial="UTC",
        help_text="The start, end and deadline are in this zone; guests see times in it. "
        "Common zones come first; type to search.",
    )
    starts_at = local_datetime_field("Starts")
    ends_at = local_datetime_field("Ends")
    capacity = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_CAPACITY,
        help_text="Seats, plus-ones included. Leave empty for no limit.",
    )
    plus_ones_allowed = forms.IntegerField(
        label="Plus-ones allowed per guest", min_value=0, max_value=MAX_PLUS_ONES, initial=0
    )
    rsvp_deadline = local_datetime_field(
        "RSVP deadline", required=False, help_text="Leave empty to accept answers until the start."
    )

    def __init__(self, *args, event: Event | None = None, with_guests: bool = False, **kwargs):
        if event is not None:
            kwargs.setdefault("initial", initial_for(event))
        super().__init__(*args, **kwargs)
        zone = self.fields["timezone"]
        zone.choices = time_zone_choices(event.timezone if event is not None else "")
        if event is None and not self.is_bound:
            # No zone chosen yet: a few lines of JS pick the browser's own (event_form.html).
            zone.widget.attrs["data-browser-default"] = "true"
        if not with_guests:
            self.drop_guest_fields()

    def full_clean(self) -> None:
        # Read the times in the zone the organizer picked (Django interprets naive input in the
        # current zone, and refuses a time that does not exist or is ambiguous there).
        zone = self.data.get("timezone") if self.is_bound else None
        if zone not in known_time_zones():
            zone = "UTC"
        with timezone.override(zone):
            super().full_clean()

    def clean(self) -> dict:
        data = super().clean()
        if not self.errors:
            for name, message in self.event_fields().errors().items():
                self.add_error(name, message)
        self.clean_guest_list()  # its line errors show along with the other fields' errors
        return data

    def event_fields(self) -> EventFields:
        data = self.cleaned_data
        return EventFields(
            title=data["title"],
            description=data.get("description", ""),
            location=data.get("location", ""),
            timezone=data["timezone"],
            starts_at=data["starts_at"],
            ends_at=data["ends_at"],
            capacity=data.get("capacity"),
            plus_ones_allowed=data.get("plus_ones_allowed") or 0,
            rsvp_deadline=data.get("rsvp_deadline"),
        )


def initial_for(event: Event) -> dict:
    def naive_local(value: dt.datetime | None) -> dt.datetime | None:
        return local(event, value).replace(tzinfo=None) if value else None

    return {
        "title": event.title,
        "description": event.description,
        "location": event.location,
        "timezone": event.timezone,
        "starts_at": naive_local(event.starts_at),
        "ends_at": naive_local(event.ends_at),
        "capacity": event.capacity,
        "plus_ones_allowed": event.plus_ones_allowed,
        "rsvp_deadline": naive_local(event.rsvp_deadline),
    }
