"""SendGrid v3 ``POST /v3/mail/send``, as the ``sendgrid`` SDK calls it.

The SDK (urllib underneath) posts JSON with ``Authorization: Bearer <key>`` and
``Connection: close``; it raises ``python_http_client.exceptions.HTTPError`` subclasses for
4xx/5xx. SendGrid answers 202 with an empty body and the id in ``X-Message-Id``, 400 with
``{"errors": [{"message", "field", "help"}]}``, and rate-limit headers on every response.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import threading
import time
from http import HTTPStatus
from typing import Any

from sandbox.faults import Verdict
from sandbox.inbox import CapturedMessage
from sandbox.mime import attachment_content
from sandbox.sendgrid_validation import error, recipients, validate
from sandbox.web import Request, Response

PATH = "/v3/mail/send"
RATE_LIMIT = 600  # per minute, SendGrid's documented limit for mail/send


def _errors_response(status: int, errors: list[dict[str, Any]]) -> Response:
    return Response.json(status, {"errors": errors})


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower()
    except ValueError:
        return "error"


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

    def scope(self, request: Request) -> str | None:
        return None

    def fault_response(self, verdict: Verdict) -> Response:
        status = verdict.status or self.default_status
        detail = f" ({verdict.code})" if verdict.code else ""
        response = _errors_response(status, [error(f"{_reason(status)}{detail} [sandbox fault]")])
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
            return _errors_response(401, [error(message)]), []
        try:
            body = request.json()
        except (ValueError, UnicodeDecodeError):
            return _errors_response(400, [error("Bad Request", None)]), []
        if not isinstance(body, dict):
            return _errors_response(400, [error("Bad Request", None)]), []
        errors = validate(body)
        if errors:
            return _errors_response(400, errors), []
        message_id = base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=")
        messages = capture(body, raw=request.body.decode("utf-8"), message_id=message_id)
        return Response(202, b"", [("X-Message-Id", message_id)]), messages


def _substitute(text: str, substitutions: dict[str, str]) -> str:
    for tag, value in substitutions.items():
        text = text.replace(tag, value)
    return text


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
        for _, _, email in recipients(personalization):
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
