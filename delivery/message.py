"""The rendered message an adapter sends. Adapters see only this, never a job."""

from __future__ import annotations

import email.charset
import email.policy
import email.utils
from dataclasses import dataclass, field
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

JOB_HEADER = "X-GPMAS-Job"


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
    def from_address(self) -> str:
        return email.utils.parseaddr(self.from_email)[1]

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
        body["From"] = _address(self.from_email)
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
WIRE = email.policy.compat32.clone(linesep="\r\n")


def _part(text: str, subtype: str) -> MIMEText:
    plain = text.isascii() and all(len(line) <= MAX_LINE for line in text.splitlines())
    return MIMEText(text, subtype, "us-ascii" if plain else UTF8)


def _text(value: str) -> str | Header:
    return value if value.isascii() else Header(value, "utf-8")


def _address(value: str) -> str:
    if value.isascii():
        return value
    return email.utils.formataddr(email.utils.parseaddr(value), charset="utf-8")
