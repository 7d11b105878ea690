"""Mailgun ``POST /v3/<domain>/messages`` and ``/v3/<domain>/messages.mime``.

What the official SDK (``mailgun.client.Client``, requests underneath) sends:
``client.messages.create(data=..., domain=d)`` posts to ``{api_url}/v3/{d}/messages`` with HTTP
Basic auth (``api``, key); the body is ``application/x-www-form-urlencoded`` (a list value such
as ``to=[a, b]`` becomes repeated fields) or, once ``files=[("attachment", (name, bytes,
type))]`` is given, ``multipart/form-data``. ``client.mimemessage.create(data={"to": ...},
files={"message": ...})`` posts ``to`` plus a ``message`` file to ``/v3/{d}/messages.mime``.
The SDK never raises on an HTTP status: it returns the ``requests.Response``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass

from sandbox.faults import Verdict
from sandbox.inbox import Attachment, CapturedMessage
from sandbox.mime import (
    FormData,
    FormError,
    addresses,
    as_text,
    attachment_content,
    parse_form,
    parse_mime,
)
from sandbox.web import Request, Response

_PATH_RE = re.compile(r"^/v3/(?P<domain>[^/]+)/(?P<kind>messages|messages\.mime)$")
# Keys may carry a prefix (``%recipient.h:X-Header%``, ``%recipient.v:key%``), as anymail uses.
_RECIPIENT_VAR_RE = re.compile(r"%recipient\.([A-Za-z0-9_:-]+)%")


def _message(status: int, text: str) -> Response:
    return Response.json(status, {"message": text})


class MailgunEmulator:
    name = "mailgun"
    default_status = 500

    def __init__(self, api_key: str, domains: tuple[str, ...]) -> None:
        self._api_key = api_key
        self._domains = tuple(d.lower() for d in domains)

    def matches(self, method: str, path: str) -> bool:
        return method == "POST" and _PATH_RE.match(path) is not None

    def status_for_code(self, code: str) -> int | None:
        return None

    def scope(self, request: Request) -> str | None:
        """The sending domain: a fault set for ``mailgun:<domain>`` holds for it alone, so one
        Mailgun provider row can be slowed while another (another domain) is not."""
        match = _PATH_RE.match(request.path)
        return match["domain"].lower() if match else None

    def fault_response(self, verdict: Verdict) -> Response:
        status = verdict.status or self.default_status
        detail = f" ({verdict.code})" if verdict.code else ""
        response = _message(status, f"Sandbox fault: HTTP {status}{detail}")
        if status == 429 and verdict.retry_after is not None:
            response.headers.append(("Retry-After", str(verdict.retry_after)))
        return response

    def handle(self, request: Request) -> tuple[Response, list[CapturedMessage]]:
        if not self._authorized(request.header("Authorization")):
            # Mailgun answers a bad key with a bare "Forbidden", not JSON.
            return Response.text(401, "Forbidden"), []
        match = _PATH_RE.match(request.path)
        assert match is not None
        domain = match["domain"].lower()
        if not self._known_domain(domain):
            return _message(404, f"Domain not found: {domain}"), []
        try:
            form = parse_form(request.header("Content-Type"), request.body)
        except FormError as exc:
            return _message(400, str(exc)), []
        message_id = f"<{time.strftime('%Y%m%d%H%M%S')}.{secrets.token_hex(8)}@{domain}>"
        if match["kind"] == "messages.mime":
            result = self._mime(form, message_id)
        else:
            result = self._messages(form, message_id, raw=as_text(request.body))
        if isinstance(result, Response):
            return result, []
        return Response.json(200, {"id": message_id, "message": "Queued. Thank you."}), result

    def _authorized(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return False
        user, _, password = decoded.partition(":")
        return user == "api" and hmac.compare_digest(password.encode(), self._api_key.encode())

    def _known_domain(self, domain: str) -> bool:
        return any(domain == d or domain.endswith(f".{d}") for d in self._domains)

    def _messages(
        self, form: FormData, message_id: str, *, raw: str
    ) -> Response | list[CapturedMessage]:
        missing = _missing_parameter(form)
        if missing is not None:
            return _message(400, missing)
        try:
            variables = _recipient_variables(form)
        except ValueError as exc:
            return _message(400, str(exc))
        send = _Send.of(form, message_id, raw)
        to, cc, bcc = (addresses(form.get_all(kind)) for kind in ("to", "cc", "bcc"))
        return [
            send.copy_for(recipient, variables, has_cc=bool(cc)) for recipient in [*to, *cc, *bcc]
        ]

    def _mime(self, form: FormData, message_id: str) -> Response | list[CapturedMessage]:
        to = addresses(form.get_all("to"))
        if not to:
            return _message(400, "to parameter is missing")
        upload = form.file("message")
        if upload is None:
            return _message(400, "message parameter is missing")
        parsed = parse_mime(upload.content)
        return [
            CapturedMessage(
                provider="mailgun",
                to=[recipient],
                from_email=parsed.from_email,
                subject=parsed.subject,
                text=parsed.text,
                html=parsed.html,
                headers=dict(parsed.headers),
                attachments=list(parsed.attachments),
                provider_message_id=message_id,
                raw=parsed.raw,
                metadata={n[2:]: v for n, v in form.fields if n.startswith("v:")},
            )
            for recipient in to
        ]


def _substitute(text: str, variables: dict[str, object]) -> str:
    return _RECIPIENT_VAR_RE.sub(lambda m: str(variables.get(m[1], m[0])), text)


def _missing_parameter(form: FormData) -> str | None:
    if not form.get("from"):
        return "from parameter is missing"
    if not addresses(form.get_all("to")):
        return "to parameter is missing"
    if not form.get("subject"):
        return "subject parameter is missing"
    if not any(form.get(name) for name in ("text", "html", "template")):
        return "Need at least one of 'text', 'html' or 'template' parameters specified"
    return None


def _recipient_variables(form: FormData) -> dict[str, dict[str, object]] | None:
    """Batch sending's per-recipient variables, or None; ValueError if not a JSON object."""
    raw = form.get("recipient-variables")
    if not raw:
        return None
    try:
        variables = json.loads(raw)
    except ValueError:
        variables = None
    if not isinstance(variables, dict):
        raise ValueError("recipient-variables parameter is not a valid JSON")
    return variables


@dataclass(frozen=True)
class _Send:
    """One ``/messages`` send: what every recipient's copy shares."""

    form: FormData
    sender: str
    from_email: str
    custom_headers: dict[str, str]
    metadata: dict[str, str]
    attachments: list[Attachment]
    message_id: str
    raw: str

    @classmethod
    def of(cls, form: FormData, message_id: str, raw: str) -> _Send:
        sender = form.get("from") or ""
        senders = addresses([sender])
        return cls(
            form=form,
            sender=sender,
            from_email=senders[0] if senders else sender,
            custom_headers={
                name[2:]: value for name, value in form.fields if name.startswith("h:")
            },
            metadata={name[2:]: value for name, value in form.fields if name.startswith("v:")},
            attachments=[
                (f.filename, f.content_type, attachment_content(f.content_type, f.content))
                for name, f in form.files
                if name in {"attachment", "inline"}
            ],
            message_id=message_id,
            raw=raw,
        )

    def copy_for(
        self, recipient: str, variables: dict[str, dict[str, object]] | None, *, has_cc: bool
    ) -> CapturedMessage:
        form = self.form
        subject, text, html = (form.get(name) or "" for name in ("subject", "text", "html"))
        headers = {"From": self.sender, "Subject": subject}
        custom_headers, metadata = dict(self.custom_headers), dict(self.metadata)
        if variables is not None:
            # Batch sending: every recipient gets a copy addressed to them alone, with
            # %recipient.KEY% replaced everywhere Mailgun replaces it.
            own = variables.get(recipient, {})
            own = own if isinstance(own, dict) else {}
            subject, text, html = (_substitute(s, own) for s in (subject, text, html))
            headers.update(To=recipient, Subject=subject)
            custom_headers = {n: _substitute(v, own) for n, v in custom_headers.items()}
            metadata = {n: _substitute(v, own) for n, v in metadata.items()}
        else:
            headers["To"] = ", ".join(form.get_all("to"))
            if has_cc:
                headers["Cc"] = ", ".join(form.get_all("cc"))
        headers.update(custom_headers)
        return CapturedMessage(
            provider="mailgun",
            to=[recipient],
            from_email=self.from_email,
            subject=subject,
            text=text,
            html=html,
            headers=headers,
            attachments=list(self.attachments),
            provider_message_id=self.message_id,
            raw=self.raw,
            metadata=metadata,
        )
