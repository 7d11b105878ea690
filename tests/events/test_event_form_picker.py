"""The new-event form: a curated time-zone picker (common zones first, no Factory, localtime or
sign-inverted Etc/GMT+5 at the top, the browser's zone by default), required fields marked, and
an error summary at the top."""

import re

import pytest
from django.urls import reverse

from events.forms import EventForm
from events.models import Event
from events.time_zones import time_zone_choices
from tests.events.factories import form_data, make_event

pytestmark = pytest.mark.django_db


def offered(choices) -> list[str]:
    return [name for _, options in choices for name, _ in options]


def test_common_zones_come_first_and_the_oddities_are_not_offered():
    choices = time_zone_choices()
    group, options = choices[0]
    assert group == "Common"
    assert [name for name, _ in options[:3]] == ["UTC", "Europe/London", "Europe/Berlin"]
    names = offered(choices)
    for oddity in ("Factory", "localtime", "posixrules", "US/Eastern", "EST5EDT", "GB"):
        assert oddity not in names
    assert [g for g, _ in choices][-1] == "Fixed offsets (Etc)"
    assert all(name.startswith("Etc/") for name, _ in choices[-1][1])
    assert not any(name.startswith("Etc/") for g, opts in choices[:-1] for name, _ in opts)


def test_etc_zones_say_their_real_offset():
    labels = dict(option for _, options in time_zone_choices() for option in options)
    assert labels["Etc/GMT+5"] == "Etc/GMT+5 (UTC−05:00)"  # five hours behind, despite the +
    assert labels["Etc/GMT-14"] == "Etc/GMT-14 (UTC+14:00)"


def test_the_new_form_asks_the_browser_for_its_zone_the_edit_form_does_not(organizer):
    assert EventForm(with_guests=True)["timezone"].field.widget.attrs["data-browser-default"]
    bound = EventForm(form_data(), with_guests=True)
    assert "data-browser-default" not in bound.fields["timezone"].widget.attrs
    event = make_event(organizer)
    assert "data-browser-default" not in EventForm(event=event).fields["timezone"].widget.attrs


def test_the_page_renders_the_groups_in_order(organizer_client):
    page = organizer_client.get(reverse("event_new")).content.decode()
    groups = re.findall(r'<optgroup label="([^"]+)"', page)
    assert groups[0] == "Common" and groups[-1] == "Fixed offsets (Etc)"
    assert "data-browser-default" in page and "resolvedOptions().timeZone" in page


def test_an_event_in_an_alias_zone_keeps_it_on_edit(organizer_client, organizer):
    event = make_event(organizer, timezone="US/Eastern")
    page = organizer_client.get(reverse("event_edit", args=[event.pk])).content.decode()
    assert re.search(r'<option value="US/Eastern" selected>', page)
    response = organizer_client.post(
        reverse("event_edit", args=[event.pk]), form_data(timezone="US/Eastern", title="Renamed")
    )
    assert response.status_code == 302
    assert Event.objects.get(pk=event.pk).timezone == "US/Eastern"


def test_an_alias_zone_is_not_offered_for_a_new_event(organizer_client):
    response = organizer_client.post(reverse("event_new"), form_data(timezone="Factory"))
    assert response.status_code == 400
    assert not Event.objects.exists()


def test_required_fields_are_marked_with_a_legend(organizer_client):
    page = organizer_client.get(reverse("event_new")).content.decode()
    assert re.search(r'<label for="id_title" class="required">', page)
    assert re.search(r'<label for="id_starts_at" class="required">', page)
    assert re.search(r'<label for="id_description">', page)  # optional: no mark
    assert "* Required" in re.sub(r"<[^>]+>", "", page).replace("  ", " ")


def test_errors_are_summed_up_at_the_top_with_links_to_their_fields(organizer_client):
    response = organizer_client.post(reverse("event_new"), form_data(title="", capacity="0"))
    assert response.status_code == 400
    page = response.content.decode()
    start = page.index('<div class="error-summary" role="alert"')
    summary = page[start : page.index("</div>", start)]
    assert "please fix these 2 problems" in summary
    assert '<a href="#id_title">Title</a>: This field is required.' in summary
    assert '<a href="#id_capacity">Capacity</a>: Ensure this value is greater' in summary
    assert start < page.index('id="id_title"')
