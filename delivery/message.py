"""The rendered message an adapter sends. Adapters see only this, never a job."""

from __future__ import annotations

import email.policy
import email.utils
from dataclasses import dataclass, field
from email.message import EmailMessage

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

    def to_mime(self) -> EmailMessage:
        mime = EmailMessage(policy=email.policy.SMTP)
        mime["From"] = self.from_email
        mime["To"] = self.to_email
        mime["Subject"] = self.subject
        mime["Date"] = email.utils.formatdate(localtime=False)
        mime["Message-ID"] = email.utils.make_msgid(domain=self.from_address.rpartition("@")[2])
        for name, value in self.headers.items():
            mime[name] = value
        mime.set_content(self.text_body)
        if self.html_body:
            mime.add_alternative(self.html_body, subtype="html")
        if self.ics:
            mime.add_attachment(
                self.ics.encode(),
                maintype="text",
                subtype="calendar",
                filename="invite.ics",
                params={"method": self.ics_method},
            )
        return mime
