"""OutgoingMessage as MIME: non-ASCII text survives the wire (RFC 2047 headers, quoted-printable
UTF-8 bodies) and comes back intact, both parsed locally and through the SMTP sink."""

from __future__ import annotations

import email
import email.policy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from delivery.message import JOB_HEADER, WIRE, OutgoingMessage
from delivery.providers import build_adapter

ICS = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//GPMAS//test//EN\r\nMETHOD:REQUEST\r\n"
    "BEGIN:VEVENT\r\nUID:e1@gpmas.local\r\nSUMMARY:Fête d'été\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)
SUBJECT = "Einladung: Grüße aus Köln ☕ — Fête d'été 😀"
FROM = "Zoë Organizer <invitations@gpmas.local>"
TEXT = "Hallo Jürgen,\nbitte antworte hier: https://gpmas.example/i/ä\n\nZoë — 😀\n"
HTML = "<p>Hallo <b>Jürgen</b>, <a href='https://gpmas.example/i/ä'>antworte</a> 😀</p>\n"


def message(**overrides) -> OutgoingMessage:
    fields = {
        "to_email": "guest@example.com",
        "from_email": FROM,
        "subject": SUBJECT,
        "text_body": TEXT,
        "html_body": HTML,
        "headers": {JOB_HEADER: "77", "X-Event": "Fête"},
        "ics": ICS,
    }
    return OutgoingMessage(**{**fields, **overrides})


def crlf_to_lf(text: str) -> str:
    return text.replace("\r\n", "\n")


def parts(parsed) -> dict[str, email.message.Message]:
    return {p.get_content_type(): p for p in parsed.walk() if not p.is_multipart()}


def test_the_wire_form_is_7bit_crlf_and_long_text_is_folded():
    subject = " ".join(["Grüße"] * 40)
    raw = message(text_body="ü" * 3000 + "\n", subject=subject).to_bytes()
    assert raw.isascii()
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998  # RFC 5322's hard limit
    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only
    encoded = email.message_from_bytes(raw, policy=email.policy.compat32)
    [text_part] = [p for p in encoded.walk() if p.get_content_type() == "text/plain"]
    assert max(len(line) for line in text_part.get_payload().splitlines()) <= 76  # soft breaks
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Subject"] == subject
    assert crlf_to_lf(parts(parsed)["text/plain"].get_content()) == "ü" * 3000 + "\n"


def test_non_ascii_headers_are_encoded_words_and_bodies_quoted_printable():
    raw = message().to_bytes()
    parsed = email.message_from_bytes(raw, policy=email.policy.compat32)
    assert parsed["Subject"].startswith("=?utf-8?")
    assert "=?utf-8?" in parsed["From"] and parsed["From"].endswith("<invitations@gpmas.local>")
    assert parsed["X-Event"].startswith("=?utf-8?")
    assert parsed[JOB_HEADER] == "77"
    assert parsed.get_content_type() == "multipart/mixed"
    for part in parsed.walk():
        if not part.is_multipart():
            assert part["Content-Transfer-Encoding"] == "quoted-printable"
            assert part.get_content_charset() == "utf-8"


def test_the_message_parses_back_intact():
    parsed = email.message_from_bytes(message().to_bytes(), policy=email.policy.default)
    assert parsed["Subject"] == SUBJECT
    [sender] = parsed["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("Zoë Organizer", "invitations@gpmas.local")
    assert parsed["To"] == "guest@example.com"
    assert parsed["X-Event"] == "Fête"
    assert parsed["Message-ID"].endswith("@gpmas.local>")
    assert parsed["Date"]
    found = parts(parsed)
    assert crlf_to_lf(found["text/plain"].get_content()) == TEXT
    assert crlf_to_lf(found["text/html"].get_content()) == HTML
    calendar = found["text/calendar"]
    assert calendar.get_filename() == "invite.ics"
    assert calendar.get_content_disposition() == "attachment"
    assert calendar.get_param("method") == "REQUEST"
    assert crlf_to_lf(calendar.get_content()) == crlf_to_lf(ICS)
    assert [p.get_content_type() for p in parsed.iter_parts()] == [
        "multipart/alternative",
        "text/calendar",
    ]


@pytest.mark.parametrize(
    ("html", "ics", "shape"),
    [
        ("", "", "text/plain"),
        (HTML, "", "multipart/alternative"),
        ("", ICS, "multipart/mixed"),
    ],
)
def test_the_mime_shape_follows_the_parts_present(html, ics, shape):
    raw = message(html_body=html, ics=ics).to_bytes()
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed.get_content_type() == shape
    assert crlf_to_lf(parts(parsed)["text/plain"].get_content()) == TEXT


@pytest.mark.django_db
def test_a_non_ascii_message_comes_back_intact_through_the_smtp_sink(providers, clean_sandbox):
    adapter = build_adapter(providers["smtp"])
    try:
        message_id = adapter.send(message())
    finally:
        adapter.close()

    [copy] = clean_sandbox.inbox.messages("smtp")
    assert message_id and copy.header("Message-ID").strip("<>") == message_id
    assert copy.to == ["guest@example.com"]
    assert copy.subject == SUBJECT
    assert copy.from_email == "invitations@gpmas.local"
    assert copy.header("From") == FROM
    assert copy.header("X-Event") == "Fête"
    assert copy.job == "77"
    assert crlf_to_lf(copy.text) == TEXT
    assert crlf_to_lf(copy.html) == HTML
    [(filename, content_type, content)] = copy.attachments
    assert (filename, content_type) == ("invite.ics", "text/calendar")
    assert crlf_to_lf(content) == crlf_to_lf(ICS)
    raw = email.message_from_string(copy.raw, policy=email.policy.default)
    [calendar] = [p for p in raw.walk() if p.get_content_type() == "text/calendar"]
    assert calendar.get_param("method") == "REQUEST"
    assert copy.raw.isascii()


# --- the wire policy's shortcut: the same bytes as compat32's own folding -------------------
LIBRARY = email.policy.compat32.clone(linesep="\r\n")


@pytest.mark.parametrize(
    "value",
    [
        "",
        "Invitation #7: the benchmark dinner",
        "  leading and trailing  ",
        "tabs\tand  runs   of spaces",
        "x" * (78 - len("Subject: ")),  # exactly at the limit: the shortcut
        "x" * (79 - len("Subject: ")),  # one over: the library's path
        "words " * 30,  # long: folded by the library
        "Grüße",  # non-ASCII: RFC 2047 by the library
        "line\r\nbreak",
    ],
)
def test_the_wire_policy_writes_a_header_as_compat32_does(value):
    assert WIRE.fold_binary("Subject", value) == LIBRARY.fold_binary("Subject", value)


@given(
    st.text(
        alphabet=st.characters(min_codepoint=32, max_codepoint=126) | st.just("\t"), max_size=90
    )
)
def test_the_wire_policy_matches_compat32_on_any_ascii_value(value):
    assert WIRE.fold_binary("X-Event", value) == LIBRARY.fold_binary("X-Event", value)


@pytest.mark.parametrize("overrides", [{}, {"subject": "Plain ASCII", "html_body": "", "ics": ""}])
def test_a_whole_message_comes_out_as_compat32_writes_it(overrides):
    mime = message(**overrides).to_mime()
    assert mime.as_bytes(policy=WIRE) == mime.as_bytes(policy=LIBRARY)
