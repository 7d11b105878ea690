"""Pasted and uploaded guest lists: every format, every bad line reported with its number."""

import pytest

from invitations.guestlist import Guest, guests_parse_csv, guests_parse_text


def test_pasted_lines_accept_the_three_formats_and_normalize_addresses():
    parsed = guests_parse_text(
        "Ann Lee <Ann@Example.com>\n"
        "bob@example.com\n"
        "carl@example.com, Carl Sagan\n"
        '"Dee, Jr." <dee@example.com>\r\n'
        "Eve Tab\teve@example.com\n"
        "\n"
        "# a comment\n"
    )
    assert parsed.errors == [] and parsed.duplicates == []
    assert parsed.guests == [
        Guest("ann@example.com", "Ann Lee", 1),
        Guest("bob@example.com", "", 2),
        Guest("carl@example.com", "Carl Sagan", 3),
        Guest("dee@example.com", "Dee, Jr.", 4),
        Guest("eve@example.com", "Eve Tab", 5),
    ]


def test_bad_lines_are_reported_with_their_line_numbers_and_the_rest_is_kept():
    parsed = guests_parse_text(
        "ok@example.com\nnot-an-email\n\nAnn <ann@>\nfine@example.com, Fine\nx@example.com\rBcc\n"
    )
    assert [g.email for g in parsed.guests] == ["ok@example.com", "fine@example.com"]
    assert [(e.line, e.text) for e in parsed.errors] == [
        (2, "not-an-email"),
        (4, "Ann <ann@>"),
        (6, "x@example.com\rBcc"),
    ]
    assert parsed.errors[0].message == "no @ in “not-an-email”: not an email address"
    assert parsed.errors[1].message == "no domain after the @ in “ann@”"


def test_duplicates_within_the_list_are_reported_against_their_first_line():
    parsed = guests_parse_text("a@example.com\nb@example.com\nA@EXAMPLE.COM\nAnn <a@example.com>")
    assert [g.email for g in parsed.guests] == ["a@example.com", "b@example.com"]
    assert [(d.line, d.first_line) for d in parsed.duplicates] == [(3, 1), (4, 1)]


def test_a_name_with_a_line_break_inside_a_csv_cell_is_refused():
    parsed = guests_parse_csv(b'email,name\nann@example.com,"Ann\nBcc: evil@example.com"\n')
    assert parsed.guests == []
    assert parsed.errors[0].line == 2
    assert "line break" in parsed.errors[0].message


def test_a_csv_with_a_header_may_put_its_columns_in_any_order():
    parsed = guests_parse_csv(
        b"Name;Company;E-Mail\nAnn Lee;ACME;ann@example.com\nBob;;BOB@example.com\n"
    )
    assert parsed.errors == []
    assert parsed.guests == [
        Guest("ann@example.com", "Ann Lee", 2),
        Guest("bob@example.com", "Bob", 3),
    ]


def test_a_csv_without_a_header_reads_like_pasted_lines():
    data = "\ufeffann@example.com,Ann\nBob <bob@example.com>\nCarl,carl@example.com\n,\nbad\n"
    parsed = guests_parse_csv(data.encode())
    assert [(g.email, g.name) for g in parsed.guests] == [
        ("ann@example.com", "Ann"),
        ("bob@example.com", "Bob"),
        ("carl@example.com", "Carl"),
    ]
    assert [e.line for e in parsed.errors] == [5]


def test_a_file_that_is_not_utf8_is_refused_whole():
    parsed = guests_parse_csv("ann@example.com,Zoë\n".encode("latin-1"))
    assert parsed.refused and "UTF-8" in parsed.refused
    assert parsed.guests == []


@pytest.mark.parametrize("how", ["text", "csv"])
def test_a_list_over_the_line_limit_is_refused_whole(settings, how):
    settings.GPMAS_GUEST_LIST_MAX_LINES = 5
    text = "".join(f"g{i}@example.com\n" for i in range(6))
    parsed = guests_parse_text(text) if how == "text" else guests_parse_csv(text.encode())
    assert "more than 5 guests" in parsed.refused
    assert parsed.guests == []


@pytest.mark.parametrize("how", ["text", "csv"])
def test_a_list_over_the_size_limit_is_refused_whole(settings, how):
    settings.GPMAS_GUEST_LIST_MAX_BYTES = 1024
    text = "".join(f"guest-number-{i}@example.com\n" for i in range(100))
    parsed = guests_parse_text(text) if how == "text" else guests_parse_csv(text.encode())
    assert "bytes" in parsed.refused
    assert parsed.guests == []


def test_the_canonical_form_reads_back_to_the_same_guests():
    parsed = guests_parse_text('Ann "Nan" Lee <ann@example.com>\nbob@example.com, Bob; Jr.\n')
    again = guests_parse_csv(parsed.canonical_csv().encode(), sniff=False)
    assert [(g.email, g.name) for g in again.guests] == [(g.email, g.name) for g in parsed.guests]
