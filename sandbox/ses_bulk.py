"""SES v2 ``SendBulkEmail`` (``POST /v2/email/outbound-bulk-emails``), emulated here because moto
5.2 does not implement it (docs/sandbox.md, "SES bulk sending").

The call is checked as SES checks it (1 to 50 entries, inline template content, valid template
data and headers, a verified sender, asked of moto), then each entry is rendered into a message
of its own: the template's ``{{name}}`` replaced by the entry's data merged over the default
data, the template's headers overridden by the entry's ``ReplacementHeaders``, and one SES
message id per entry. SES answers per entry: an entry addressed to a ``rejected@…`` mailbox gets
``MESSAGE_REJECTED`` (the sandbox's rule, as ``bounce@…`` bounces), the others ``SUCCESS``.
An entry whose template names a value its data lacks is accepted and never delivered: SES
reports that only later, as a rendering failure.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable
from typing import Any

from moto.ses.utils import get_random_message_id

from sandbox.inbox import CapturedMessage
from sandbox.mime import addresses
from sandbox.web import Request, Response

log = logging.getLogger(__name__)
BULK_PATH = "/v2/email/outbound-bulk-emails"
MAX_ENTRIES = 50
MAX_HEADERS = 15
REJECTED_MAILBOX = "rejected"
_HEADER_NAME = re.compile(r"^[!-9;-~]{1,126}$")
_HEADER_VALUE = re.compile(r"^[ -~]{1,995}$")
_PLACEHOLDER = re.compile(r"\{\{\{?\s*([A-Za-z0-9_.-]+)\s*\}?\}\}")


class BulkRefused(Exception):
    """The call as a whole is refused: ``code`` and message as SES sends them."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.status = code, status


class RenderingFailure(Exception):
    pass


def aws_error(status: int, code: str, message: str) -> Response:
    return Response.json(
        status,
        {"__type": code, "message": message},
        [("x-amzn-ErrorType", code), ("x-amzn-RequestId", str(uuid.uuid4()))],
    )


def answer_bulk(
    request: Request, *, sender_verified: Callable[[str], bool]
) -> tuple[Response, list[CapturedMessage]]:
    try:
        body = request.json()
        if not isinstance(body, dict):
            raise BulkRefused("BadRequestException", "the body must be a JSON object")
        answer, captured = send_bulk(body, sender_verified=sender_verified)
    except BulkRefused as exc:
        return aws_error(exc.status, exc.code, str(exc)), []
    except (ValueError, UnicodeDecodeError) as exc:
        return aws_error(400, "BadRequestException", f"sandbox could not parse: {exc}"), []
    return Response.json(200, answer, [("x-amzn-RequestId", str(uuid.uuid4()))]), captured


def send_bulk(
    body: dict[str, Any], *, sender_verified: Callable[[str], bool]
) -> tuple[dict[str, Any], list[CapturedMessage]]:
    """The answer to one call and the copies it delivered; raises ``BulkRefused``."""
    template, entries = _checked(body)
    sender = str(body["FromEmailAddress"])
    if not sender_verified(sender):
        raise BulkRefused(
            "MessageRejected",
            f"Email address is not verified. The following identities failed the check: {sender}",
        )
    results, captured, raw = [], [], json.dumps(body, ensure_ascii=False)
    for entry in entries:
        result, copies = _send_entry(sender, template, entry, body, raw)
        results.append(result)
        captured += copies
    return {"BulkEmailEntryResults": results}, captured


def _checked(body: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    if not body.get("FromEmailAddress"):
        raise BulkRefused("BadRequestException", "FromEmailAddress is required")
    entries = body.get("BulkEmailEntries")
    if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_ENTRIES:
        raise BulkRefused(
            "BadRequestException", f"BulkEmailEntries must hold 1 to {MAX_ENTRIES} entries"
        )
    template = (body.get("DefaultContent") or {}).get("Template") or {}
    content = template.get("TemplateContent")
    if not content:
        if template.get("TemplateName"):  # the sandbox stores no templates
            name = template["TemplateName"]
            raise BulkRefused("NotFoundException", f"Template {name} does not exist.", 404)
        raise BulkRefused("BadRequestException", "DefaultContent.Template needs TemplateContent")
    if not content.get("Subject") or not (content.get("Text") or content.get("Html")):
        raise BulkRefused("BadRequestException", "Template content needs a subject and a body")
    _data(template.get("TemplateData"))
    _headers(template.get("Headers"))
    for entry in entries:
        if not recipients(entry):
            raise BulkRefused("BadRequestException", "Every entry needs a destination")
        replacement = (entry.get("ReplacementEmailContent") or {}).get("ReplacementTemplate")
        _data((replacement or {}).get("ReplacementTemplateData"))
        _headers(entry.get("ReplacementHeaders"))
    return template, entries


def _data(text: Any) -> dict[str, Any]:
    try:
        data = json.loads(text or "{}")
    except (TypeError, ValueError):
        data = None
    if not isinstance(data, dict):
        raise BulkRefused("BadRequestException", "Template data must be a JSON object")
    return data


def _headers(headers: Any) -> list[tuple[str, str]]:
    headers = headers or []
    if not isinstance(headers, list) or len(headers) > MAX_HEADERS:
        raise BulkRefused("BadRequestException", f"At most {MAX_HEADERS} headers per message")
    pairs = [(str(h.get("Name", "")), str(h.get("Value", ""))) for h in headers]
    for name, value in pairs:
        if not _HEADER_NAME.match(name) or not _HEADER_VALUE.match(value):
            raise BulkRefused("BadRequestException", f"Invalid message header {name!r}")
    return pairs


def recipients(entry: dict[str, Any]) -> list[str]:
    """The addresses of an entry's ``Destination`` (or of a SendEmail request's)."""
    destination = entry.get("Destination") or {}
    keys = ("ToAddresses", "CcAddresses", "BccAddresses")
    return addresses([address for key in keys for address in destination.get(key) or []])


def rejection(request: Request) -> str:
    """Why SES rejects a SendEmail request ("" when it does not): the rule for each entry of a
    SendBulkEmail call."""
    try:
        body = request.json()
    except (ValueError, UnicodeDecodeError):
        return ""
    return _rejection(recipients(body)) if isinstance(body, dict) else ""


def _rejection(addresses: list[str]) -> str:
    refused = [a for a in addresses if a.partition("@")[0].lower() == REJECTED_MAILBOX]
    return f"Email address is on the sandbox's rejection list: {refused[0]}" if refused else ""


def _send_entry(sender: str, template: dict, entry: dict, body: dict, raw: str):
    to = recipients(entry)
    if error := _rejection(to):
        return {"Status": "MESSAGE_REJECTED", "Error": error}, []
    message_id = get_random_message_id()
    try:
        fields = _rendered(sender, template, entry)
    except RenderingFailure as exc:
        log.warning("sandbox SES: message %s not delivered: %s", message_id, exc)
        return {"Status": "SUCCESS", "MessageId": message_id}, []
    fields["headers"]["Message-ID"] = f"<{message_id}@email.amazonses.com>"
    tags = {
        str(tag.get("Name")): str(tag.get("Value"))
        for tag in [*(body.get("DefaultEmailTags") or []), *(entry.get("ReplacementTags") or [])]
    }
    copies = [
        CapturedMessage(
            provider="ses",
            to=[recipient],
            **{**fields, "headers": dict(fields["headers"])},
            provider_message_id=message_id,
            raw=raw,
            metadata=dict(tags),
        )
        for recipient in to
    ]
    return {"Status": "SUCCESS", "MessageId": message_id}, copies


def _rendered(sender: str, template: dict, entry: dict) -> dict[str, Any]:
    """The message SES would build from the entry, as the inbox keeps it. Not written out as
    MIME and parsed back (about 15 ms a message: the emulator, not the sender, would be what a
    benchmark measures); its ``raw`` is the call's request."""
    content = template["TemplateContent"]
    replacement = (entry.get("ReplacementEmailContent") or {}).get("ReplacementTemplate") or {}
    data = _data(template.get("TemplateData"))
    data.update(_data(replacement.get("ReplacementTemplateData")))
    senders = addresses([sender])
    subject = _render(content["Subject"], data)
    headers = {"From": sender, "To": ", ".join(recipients(entry)), "Subject": subject}
    for name, value in [
        *_headers(template.get("Headers")),
        *_headers(entry.get("ReplacementHeaders")),
    ]:
        headers = {k: v for k, v in headers.items() if k.lower() != name.lower()}
        headers[name] = value  # an entry's header replaces the template's of the same name
    return {
        "from_email": senders[0] if senders else sender,
        "subject": subject,
        "text": _render(content.get("Text") or "", data),
        "html": _render(content.get("Html") or "", data),
        "headers": headers,
    }


def _render(text: str, data: dict[str, Any]) -> str:
    """One pass: a value is inserted as is, never read as a template itself (as Handlebars)."""

    def value(match: re.Match) -> str:
        found: Any = data
        for part in match[1].split("."):
            if not isinstance(found, dict) or part not in found:
                raise RenderingFailure(f"Attribute '{match[1]}' is not present in the data")
            found = found[part]
        return str(found)

    return _PLACEHOLDER.sub(value, text)
