"""The invite preview: who will be invited and how each line was read, and for every line with
a problem the organizer's own text and what is wrong with it."""

import html
import re

import pytest
from django.urls import reverse

from invitations.guestlist import guests_parse_csv, guests_parse_text
from invitations.models import Invitation

pytestmark = pytest.mark.django_db


def preview(client, event, guests: str):
    response = client.post(
        reverse("event_invite", args=[event.pk]), {"action": "preview", "guests": guests}
    )
    return response, response.content.decode()


def rows(page: str, table_id: str) -> list[list[str]]:
    return rows_of(page, page.index(f'id="{table_id}"'))


def test_the_preview_lists_who_will_be_invited_and_how_each_name_was_read(organizer_client, event):
    response, page = preview(
        organizer_client,
        event,
        "Ann Lee <Ann.Lee@Example.com>\nbob@example.com, Bob Stone\nCarl Diaz\tcarl@example.com\n"
        "dora@example.com",
    )
    assert response.status_code == 200
    assert rows(page, "preview-guests") == [
        ["1", "Ann Lee", "ann.lee@example.com"],
        ["2", "Bob Stone", "bob@example.com"],
        ["3", "Carl Diaz", "carl@example.com"],
        ["4", "(no name)", "dora@example.com"],
    ]
    assert not Invitation.objects.filter(email="ann.lee@example.com").exists()  # a preview


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("Ann Lee <Ann@Example.com", "Missing closing > in “Ann Lee <Ann@Example.com”."),
        ("Ann@Example.com>", "Missing opening < in “Ann@Example.com>”."),
        ("Ann Lee <Ann@>", "No domain after the @ in “Ann@”."),
        ("Ann Lee <@Example.com>", "Nothing before the @ in “@Example.com”."),
        ("Bob.Stone", "No @ in “Bob.Stone”: not an email address."),
        ("Bob@Example", "The domain “Example” has no dot (like example.com)."),
        ("Bob@@Example.com", "More than one @ in “Bob@@Example.com”."),
        ("Ann Lee Ann@Example.com", "A space in “Ann Lee Ann@Example.com”: write “Name <email>”"),
    ],
)
def test_each_bad_line_keeps_its_text_and_says_what_is_wrong(
    organizer_client, event, line, problem
):
    response, page = preview(organizer_client, event, f"ok@example.com\n{line}")
    assert response.status_code == 200
    [[number, text, said]] = rows_of(page, page.index('class="line-errors"'))
    assert (number, text) == ("2", line)  # as typed: not lower-cased
    assert said.startswith(problem)


def rows_of(page: str, start: int) -> list[list[str]]:
    body = page[page.index("<tbody>", start) : page.index("</tbody>", start)]
    return [
        [
            html.unescape(re.sub(r"<[^>]+>", "", cell)).strip()
            for cell in re.findall(r"<td[^>]*>(.*?)</td>", row)
        ]
        for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)
    ]


def test_a_csv_keeps_the_original_case_in_its_errors_too():
    parsed = guests_parse_csv(b"email,name\nAnn@Example,Ann\n")
    assert parsed.errors[0].message == "the domain “Example” has no dot (like example.com)"


def test_valid_addresses_are_still_compared_lower_cased():
    parsed = guests_parse_text("Ann@Example.com\nann@example.com")
    assert [g.email for g in parsed.guests] == ["ann@example.com"]
    assert len(parsed.duplicates) == 1


def test_an_empty_preview_shows_the_error_summary(organizer_client, event):
    response, page = preview(organizer_client, event, "")
    assert response.status_code == 400
    assert 'class="error-summary"' in page
    assert '<a href="#id_guests">Guests</a>: Paste at least one guest' in page
