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
        body = MIMEText(self.text_body, "plain", UTF8)
        if self.html_body:
            html = MIMEText(self.html_body, "html", UTF8)
            body = MIMEMultipart("alternative", _subparts=[body, html])
        if self.ics:
            calendar = MIMEText(self.ics, "calendar", UTF8)
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


# UTF-8 bodies go quoted-printable (readable, 7-bit safe), not base64.
UTF8 = email.charset.Charset("utf-8")
UTF8.body_encoding = email.charset.QP
WIRE = email.policy.compat32.clone(linesep="\r\n")


def _text(value: str) -> str | Header:
    return value if value.isascii() else Header(value, "utf-8")


def _address(value: str) -> str:
    if value.isascii():
        return value
    return email.utils.formataddr(email.utils.parseaddr(value), charset="utf-8")
