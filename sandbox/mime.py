"""Parsing of what the SDKs send: MIME messages and HTML form bodies (urlencoded or multipart)."""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass, field
from email.message import EmailMessage, Message
from email.utils import getaddresses
from urllib.parse import parse_qsl

from sandbox.inbox import Attachment


@dataclass
class ParsedMime:
    from_email: str = ""
    subject: str = ""
    recipients: list[str] = field(default_factory=list)  # To, Cc and Bcc headers
    headers: dict[str, str] = field(default_factory=dict)
    text: str = ""
    html: str = ""
    attachments: list[Attachment] = field(default_factory=list)
    raw: str = ""


def as_text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def addresses(values: list[str]) -> list[str]:
    """Bare addresses from header-style values ('Ann <a@x>, b@y'), in order."""
    return [addr for _, addr in getaddresses(values) if addr]


def attachment_content(content_type: str, payload: bytes) -> str | bytes:
    """Text attachments (an .ics invitation) as text, so pages and tests can read them."""
    if content_type.startswith("text/") or content_type in {
        "application/ics",
        "application/json",
    }:
        try:
            return payload.decode("utf-8")
        except UnicodeDecodeError:
            return payload
    return payload


def parse_mime(data: bytes) -> ParsedMime:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    parsed = ParsedMime(raw=as_text(data))
    for name, value in message.items():
        # The first occurrence wins (Received-style repeats are of no interest here).
        parsed.headers.setdefault(name, str(value))
    parsed.subject = str(message.get("Subject", ""))
    senders = addresses([str(message.get("From", ""))])
    parsed.from_email = senders[0] if senders else ""
    parsed.recipients = addresses(
        [str(v) for key in ("To", "Cc", "Bcc") for v in message.get_all(key, [])]
    )
    for part in message.walk():
        if part.is_multipart():
            continue
        content_type = part.get_content_type()
        disposition = part.get_content_disposition()
        filename = part.get_filename()
        payload = part.get_payload(decode=True) or b""
        if disposition == "attachment" or filename or content_type == "text/calendar":
            parsed.attachments.append(
                (filename or "", content_type, attachment_content(content_type, payload))
            )
        elif content_type == "text/plain" and not parsed.text:
            parsed.text = _decode_text(part, payload)
        elif content_type == "text/html" and not parsed.html:
            parsed.html = _decode_text(part, payload)
    return parsed


def _decode_text(part: Message, payload: bytes) -> str:
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:
        return payload.decode("utf-8", errors="replace")


@dataclass
class FormFile:
    filename: str
    content_type: str
    content: bytes


@dataclass
class FormData:
    """An HTML form body: fields and files, each name possibly repeated, in order."""

    fields: list[tuple[str, str]] = field(default_factory=list)
    files: list[tuple[str, FormFile]] = field(default_factory=list)

    def get(self, name: str) -> str | None:
        for key, value in self.fields:
            if key == name:
                return value
        return None

    def get_all(self, name: str) -> list[str]:
        return [value for key, value in self.fields if key == name]

    def file(self, name: str) -> FormFile | None:
        for key, value in self.files:
            if key == name:
                return value
        return None


class FormError(ValueError):
    pass


def parse_form(content_type: str, body: bytes) -> FormData:
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "application/x-www-form-urlencoded" or (not kind and not body):
        return FormData(
            fields=parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True)
        )
    if kind == "multipart/form-data":
        return _parse_multipart(content_type, body)
    raise FormError(f"unsupported Content-Type {kind or '(none)'}")


def _parse_multipart(content_type: str, body: bytes) -> FormData:
    # The email package parses multipart/form-data fine once it sees the Content-Type header.
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = email.message_from_bytes(head + body, policy=email.policy.HTTP)
    if not message.is_multipart():
        raise FormError("malformed multipart body")
    form = FormData()
    for part in message.iter_parts() if isinstance(message, EmailMessage) else []:
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        payload = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is not None:
            form.files.append((str(name), FormFile(filename, part.get_content_type(), payload)))
        else:
            charset = part.get_content_charset() or "utf-8"
            form.fields.append((str(name), payload.decode(charset, errors="replace")))
    return form
