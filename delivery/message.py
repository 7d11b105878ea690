"""The rendered message an adapter sends. Adapters see only this, never a job."""

from __future__ import annotations

import email.charset
import email.policy
import email.utils
import functools
from dataclasses import dataclass, field
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

JOB_HEADER = "X-GPMAS-Job"
# The job's id under this name in what providers echo in their events (SendGrid custom_args,
# Mailgun v: variables); delivery.webhooks.events reads it back.
JOB_METADATA = "gpmas_job"


@dataclass(frozen=True)
class OutgoingMessage:
    to_email: str
    from_email: str
    subject: str
    text_body: str
    html_body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    ics: str = ""  # an iCalendar object, attached as invite.ics

    @property
    def job_id(self) -> str:
        return self.headers.get(JOB_HEADER, "")

    @property
    def from_address(self) -> str:
        return _bare_address(self.from_email)

    @property
    def from_display_name(self) -> str:
        """``Olivia Park via GPMAS`` of ``Olivia Park via GPMAS <invitations@…>``, unquoted."""
        return email.utils.parseaddr(self.from_email)[0]

    @property
    def from_header(self) -> str:
        """The sender as a header carries it: a non-ASCII name RFC 2047-encoded."""
        return _address(self.from_email)

    @property
    def ics_method(self) -> str:
        for line in self.ics.splitlines():
            if line.upper().startswith("METHOD:"):
                return line.split(":", 1)[1].strip().upper()
        return "PUBLISH"

    def to_mime(self) -> Message:
        """The message as MIME, built with the classic (compat32) email classes.

        The modern ``EmailMessage`` parses every header it is given through the header
        registry, which cost three quarters of a millisecond per message, more than the rest of
        building it; headers were validated when the job was written, so they are set as is.
        """
        body = _part(self.text_body, "plain")
        if self.html_body:
            body = MIMEMultipart("alternative", _subparts=[body, _part(self.html_body, "html")])
        if self.ics:
            calendar = _part(self.ics, "calendar")
            calendar.set_param("method", self.ics_method)
            calendar.add_header("Content-Disposition", "attachment", filename="invite.ics")
            body = MIMEMultipart("mixed", _subparts=[body, calendar])
        body["From"] = self.from_header
        body["To"] = _address(self.to_email)
        body["Subject"] = _text(self.subject)
        body["Date"] = email.utils.formatdate(localtime=False)
        body["Message-ID"] = email.utils.make_msgid(domain=self.from_address.rpartition("@")[2])
        for name, value in self.headers.items():
            body[name] = _text(value)
        return body

    def to_bytes(self) -> bytes:
        return self.to_mime().as_bytes(policy=WIRE)


# Non-ASCII bodies go quoted-printable (readable, 7-bit safe), not base64; plain ASCII goes as
# is (7bit), smaller and cheaper for every server that parses it.
UTF8 = email.charset.Charset("utf-8")
UTF8.body_encoding = email.charset.QP
MAX_LINE = 998  # RFC 5322: longer lines must be encoded


class _WirePolicy(email.policy.Compat32):
    """compat32 with CRLF line ends, and a shortcut for the usual header.

    compat32 runs every header through ``email.header.Header`` to fold it, about 8 us each, most
    of the cost of writing a message out. A short ASCII value on one line comes out of that
    unchanged, so it is written as is; anything else (non-ASCII, too long, a line break) still
    takes the library's path. tests/delivery/test_message_mime.py holds the two to the same bytes.
    """

    def _fold(self, name, value, sanitize):
        if (
            isinstance(value, str)
            and value.isascii()
            and "\r" not in value
            and "\n" not in value
            and self.max_line_length
            and len(name) + 2 + len(value) <= self.max_line_length
        ):
            return f"{name}: {value}{self.linesep}"
        return super()._fold(name, value, sanitize)


WIRE = _WirePolicy(linesep="\r\n")


@functools.lru_cache(maxsize=64)
def _bare_address(value: str) -> str:
    # Parsed twice per message (envelope sender, Message-ID domain), and a batch's messages
    # nearly always share their sender.
    return email.utils.parseaddr(value)[1]


def _part(text: str, subtype: str) -> MIMEText:
    plain = text.isascii() and all(len(line) <= MAX_LINE for line in text.splitlines())
    return MIMEText(text, subtype, "us-ascii" if plain else UTF8)


def _text(value: str) -> str | Header:
    return value if value.isascii() else Header(value, "utf-8")


def _address(value: str) -> str:
    if value.isascii():
        return value
    return email.utils.formataddr(email.utils.parseaddr(value), charset="utf-8")
