"""SendGrid v3 ``POST /v3/mail/send``, as the ``sendgrid`` SDK calls it.

The SDK (urllib underneath) posts JSON with ``Authorization: Bearer <key>`` and
``Connection: close``; it raises ``python_http_client.exceptions.HTTPError`` subclasses for
4xx/5xx. SendGrid answers 202 with an empty body and the id in ``X-Message-Id``, 400 with
``{"errors": [{"message", "field", "help"}]}``, and rate-limit headers on every response.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
import threading
import time
from http import HTTPStatus
from typing import Any

from sandbox.faults import Verdict
from sandbox.inbox import CapturedMessage
from sandbox.mime import attachment_content
from sandbox.web import Request, Response

PATH = "/v3/mail/send"
RATE_LIMIT = 600  # per minute, SendGrid's documented limit for mail/send


def _error(message: str, field: str | None = None) -> dict[str, Any]:
    return {"message": message, "field": field, "help": None}


def _errors_response(status: int, errors: list[dict[str, Any]]) -> Response:
    return Response.json(status, {"errors": errors})


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower()
    except ValueError:
        return "error"


def _valid_address(value: Any) -> bool:
    if not isinstance(value, str) or value.count("@") != 1:
        return False
    local, domain = value.split("@")
    return bool(local) and "." in domain and not any(c.isspace() or c in "<>," for c in value)


class SendGridEmulator:
    name = "sendgrid"
    default_status = 500

    def __init__(self, api_key: str) -> None:
        self._api_key = api_key
        self._window_lock = threading.Lock()
        self._window_start = 0
        self._window_calls = 0

    def matches(self, method: str, path: str) -> bool:
        return method == "POST" and path == PATH

    def status_for_code(self, code: str) -> int | None:
        return None

    def fault_response(self, verdict: Verdict) -> Response:
        status = verdict.status or self.default_status
        detail = f" ({verdict.code})" if verdict.code else ""
        response = _errors_response(status, [_error(f"{_reason(status)}{detail} [sandbox fault]")])
        if status == 429 and verdict.retry_after is not None:
            response.headers.append(("Retry-After", str(verdict.retry_after)))
        return self._with_rate_limit(response, retry_after=verdict.retry_after)

    def handle(self, request: Request) -> tuple[Response, list[CapturedMessage]]:
        response, messages = self._handle(request)
        return self._with_rate_limit(response), messages

    def _with_rate_limit(self, response: Response, retry_after: int | None = None) -> Response:
        now = time.time()
        minute = int(now // 60) * 60
        with self._window_lock:
            if minute != self._window_start:
                self._window_start, self._window_calls = minute, 0
            self._window_calls += 1
            remaining = max(0, RATE_LIMIT - self._window_calls)
        reset = minute + 60
        if response.status == 429:
            remaining = 0
            if retry_after is not None:
                reset = int(now) + retry_after
        response.headers += [
            ("X-RateLimit-Limit", str(RATE_LIMIT)),
            ("X-RateLimit-Remaining", str(remaining)),
            ("X-RateLimit-Reset", str(reset)),
        ]
        return response

    def _handle(self, request: Request) -> tuple[Response, list[CapturedMessage]]:
        auth = request.header("Authorization")
        expected = f"Bearer {self._api_key}"
        if not hmac.compare_digest(auth.encode(), expected.encode()):
            message = "The provided authorization grant is invalid, expired, or revoked"
            return _errors_response(401, [_error(message)]), []
        try:
            body = request.json()
        except (ValueError, UnicodeDecodeError):
            return _errors_response(400, [_error("Bad Request", None)]), []
        if not isinstance(body, dict):
            return _errors_response(400, [_error("Bad Request", None)]), []
        errors = validate(body)
        if errors:
            return _errors_response(400, errors), []
        message_id = base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=")
        messages = capture(body, raw=request.body.decode("utf-8"), message_id=message_id)
        return Response(202, b"", [("X-Message-Id", message_id)]), messages


def _recipients(personalization: dict[str, Any]) -> list[tuple[str, str, Any]]:
    found = []
    for kind in ("to", "cc", "bcc"):
        entries = personalization.get(kind) or []
        if isinstance(entries, list):
            for index, entry in enumerate(entries):
                email = entry.get("email") if isinstance(entry, dict) else None
                found.append((kind, f"{kind}.{index}.email", email))
    return found


def validate(body: dict[str, Any]) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []
    sender = body.get("from")
    if not isinstance(sender, dict) or not sender.get("email"):
        errors.append(
            _error(
                "The from object must be provided for every email send. It is an object that "
                "requires the email parameter, but may also contain a name parameter.",
                "from.email",
            )
        )
    elif not _valid_address(sender["email"]):
        errors.append(_error("The from email does not contain a valid address.", "from.email"))

    personalizations = body.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        errors.append(
            _error(
                "The personalizations field is required and must have at least one "
                "personalization.",
                "personalizations",
            )
        )
        personalizations = []
    seen: set[str] = set()
    if len(personalizations) > MAX_PERSONALIZATIONS:
        errors.append(
            _error(
                "The personalizations field may not have more than 1000 personalizations.",
                "personalizations",
            )
        )
    for p_index, personalization in enumerate(personalizations):
        prefix = f"personalizations.{p_index}"
        if not isinstance(personalization, dict):
            errors.append(_error("Invalid type. Expected: object.", prefix))
            continue
        if not isinstance(personalization.get("to"), list) or not personalization["to"]:
            errors.append(
                _error(
                    "The to array is required for all personalization objects, and must have "
                    "at least one email object with a valid email address.",
                    f"{prefix}.to",
                )
            )
        for kind, field, email in _recipients(personalization):
            if not _valid_address(email):
                errors.append(_error("Does not contain a valid address.", f"{prefix}.{field}"))
                continue
            key = email.lower()
            if key in seen:
                errors.append(
                    _error(
                        "Each email address in the personalization block should be unique "
                        "between to, cc, and bcc. We found the first duplicate instance of "
                        f"[{email}] in the {prefix}.{kind} field.",
                        f"{prefix}.{kind}",
                    )
                )
            seen.add(key)
        if "headers" in personalization and not _string_map(personalization["headers"]):
            errors.append(_error("Invalid type. Expected: object of strings.", f"{prefix}.headers"))
        substitutions = personalization.get("substitutions", {})
        if not _string_map(substitutions):
            errors.append(
                _error("Invalid type. Expected: object of strings.", f"{prefix}.substitutions")
            )
        elif _substitutions_size(substitutions) > MAX_SUBSTITUTION_BYTES:
            errors.append(
                _error(
                    "The total size of your substitutions may not exceed 10,000 bytes per "
                    "personalization object.",
                    f"{prefix}.substitutions",
                )
            )

    has_template = bool(body.get("template_id"))
    every_has_subject = bool(personalizations) and all(
        isinstance(p, dict) and p.get("subject") for p in personalizations
    )
    if not body.get("subject") and not has_template and not every_has_subject:
        errors.append(
            _error(
                "The subject is required. You can get around this requirement if you use a "
                "template with a subject defined or if every personalization has a subject "
                "defined.",
                "subject",
            )
        )
    content = body.get("content")
    if not has_template:
        if not isinstance(content, list) or not content:
            errors.append(
                _error(
                    "Unless a valid template_id is provided, the content parameter is required. "
                    "There must be at least one defined content block.",
                    "content",
                )
            )
        else:
            for index, block in enumerate(content):
                if not isinstance(block, dict) or not block.get("type") or "value" not in block:
                    errors.append(
                        _error("Content blocks need a type and a value.", f"content.{index}")
                    )
    if "headers" in body and not _string_map(body["headers"]):
        errors.append(_error("Invalid type. Expected: object of strings.", "headers"))
    for index, attachment in enumerate(body.get("attachments") or []):
        if not isinstance(attachment, dict) or not attachment.get("filename"):
            errors.append(
                _error("The attachment filename parameter is required.", f"attachments.{index}")
            )
            continue
        try:
            base64.b64decode(attachment.get("content") or "", validate=True)
        except (binascii.Error, ValueError):
            errors.append(
                _error(
                    "The attachment content must be base64 encoded.",
                    f"attachments.{index}.content",
                )
            )
    return errors


MAX_PERSONALIZATIONS = 1000
MAX_SUBSTITUTION_BYTES = 10_000


def _substitutions_size(substitutions: dict[str, str]) -> int:
    return sum(len(k.encode()) + len(v.encode()) for k, v in substitutions.items())


def _substitute(text: str, substitutions: dict[str, str]) -> str:
    for tag, value in substitutions.items():
        text = text.replace(tag, value)
    return text


def _string_map(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )


def capture(body: dict[str, Any], *, raw: str, message_id: str) -> list[CapturedMessage]:
    text = html = ""
    for block in body.get("content") or []:
        if block["type"] == "text/plain" and not text:
            text = str(block["value"])
        elif block["type"] == "text/html" and not html:
            html = str(block["value"])
    attachments = []
    for attachment in body.get("attachments") or []:
        content_type = attachment.get("type") or "application/octet-stream"
        payload = base64.b64decode(attachment.get("content") or "")
        attachments.append(
            (attachment["filename"], content_type, attachment_content(content_type, payload))
        )
    sender = body["from"]["email"]
    messages = []
    for personalization in body["personalizations"]:
        headers = {**(body.get("headers") or {}), **(personalization.get("headers") or {})}
        metadata = {
            **(body.get("custom_args") or {}),
            **(personalization.get("custom_args") or {}),
        }
        # Substitution tags are replaced in the subject and every content block, as SendGrid does
        # for requests without a dynamic template.
        substitutions = personalization.get("substitutions") or {}
        subject = _substitute(
            personalization.get("subject") or body.get("subject") or "", substitutions
        )
        for _, _, email in _recipients(personalization):
            messages.append(
                CapturedMessage(
                    provider="sendgrid",
                    to=[email],
                    from_email=sender,
                    subject=subject,
                    text=_substitute(text, substitutions),
                    html=_substitute(html, substitutions),
                    headers=dict(headers),
                    attachments=list(attachments),
                    provider_message_id=message_id,
                    raw=raw,
                    metadata={str(k): str(v) for k, v in metadata.items()},
                )
            )
    return messages
