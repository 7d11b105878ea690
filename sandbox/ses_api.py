"""SES v2 ``SendEmail`` (``POST /v2/email/outbound-emails``): faults here, the rest by moto.

boto3 ``sesv2`` posts rest-json (``Content-Type: application/json``, SigV4 ``Authorization``
with signing name ``ses``); ``Content.Raw.Data`` travels base64-encoded inside the JSON.
The emulator applies the fault, then forwards the request unchanged to a moto server
(``sandbox.moto_backend``) and relays moto's answer, so verification rules (an unverified sender
gets ``MessageRejected``) are moto's. moto 5.2 accepts both ``Simple`` and ``Raw`` content.
Other SES calls (``GetAccount``, v1 query API) pass through to moto untouched: no faults, no
stats.
"""

from __future__ import annotations

import base64
import binascii
import http.client
import json
import re
import threading
from typing import Any

from sandbox.faults import Verdict
from sandbox.inbox import CapturedMessage
from sandbox.mime import addresses, attachment_content, parse_mime
from sandbox.ses_bulk import BULK_PATH, answer_bulk, aws_error, rejection
from sandbox.web import Request, Response

SEND_PATH = "/v2/email/outbound-emails"
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)
_REGION_RE = re.compile(r"Credential=[^/,\s]+/\d{8}/([a-z0-9-]+)/")

# The HTTP status botocore's model gives each sesv2 SendEmail error (plus the generic ones).
STATUS_FOR_CODE: dict[str, int] = {
    "TooManyRequestsException": 429,
    "LimitExceededException": 400,
    "Throttling": 400,
    "AccountSuspendedException": 400,
    "SendingPausedException": 400,
    "MessageRejected": 400,
    "MailFromDomainNotVerifiedException": 400,
    "NotFoundException": 404,
    "BadRequestException": 400,
    "AccessDeniedException": 403,
    "InternalFailure": 500,
    "ServiceUnavailable": 503,
}


def code_for_status(status: int) -> str:
    if status == 429:
        return "TooManyRequestsException"
    if status >= 500:
        return "InternalFailure"
    if status in (401, 403):
        return "AccessDeniedException"
    if status == 404:
        return "NotFoundException"
    return "BadRequestException"


class SesEmulator:
    name = "ses"
    default_status = 500

    def __init__(self, backend_host: str, backend_port: int, identities: tuple[str, ...]) -> None:
        self._backend = (backend_host, backend_port)
        self._identities = identities
        self._verified_regions: set[str] = set()
        self._verify_lock = threading.Lock()
        self._clients: dict[str, Any] = {}

    def _moto(self, region: str) -> Any:
        """A boto3 SES (v1) client of the moto server, for its identities in ``region``."""
        with self._verify_lock:
            if region not in self._clients:
                import boto3  # noqa: PLC0415  (slow import, needed only once)

                host, port = self._backend
                self._clients[region] = boto3.client(
                    "ses",
                    endpoint_url=f"http://{host}:{port}",
                    region_name=region,
                    aws_access_key_id="sandbox",
                    aws_secret_access_key="sandbox",
                )
            return self._clients[region]

    # Moto keeps identities per region; verify them in whichever region a caller signs for.
    def ensure_identities(self, region: str) -> None:
        client = self._moto(region)
        with self._verify_lock:
            if region in self._verified_regions:
                return
            for identity in self._identities:
                if "@" in identity:
                    client.verify_email_identity(EmailAddress=identity)
                else:
                    client.verify_domain_identity(Domain=identity)
            self._verified_regions.add(region)

    def matches(self, method: str, path: str) -> bool:
        return method == "POST" and path in (SEND_PATH, BULK_PATH)

    def is_passthrough(self, request: Request) -> bool:
        if request.path.startswith("/v2/"):
            return True
        return (
            request.method == "POST"
            and request.path == "/"
            and request.header("Authorization").startswith("AWS4-HMAC-SHA256")
        )

    def status_for_code(self, code: str) -> int | None:
        return STATUS_FOR_CODE.get(code, 400)

    def scope(self, request: Request) -> str | None:
        return None

    def fault_response(self, verdict: Verdict) -> Response:
        status = verdict.status or self.default_status
        code = verdict.code or code_for_status(status)
        response = aws_error(status, code, f"Sandbox fault: {code}")
        if status == 429 and verdict.retry_after is not None:
            response.headers.append(("Retry-After", str(verdict.retry_after)))
        return response

    def handle(self, request: Request) -> tuple[Response, list[CapturedMessage]]:
        if request.path == BULK_PATH:
            return self.bulk(request)
        if error := rejection(request):
            return aws_error(400, "MessageRejected", error), []
        response = self.passthrough(request)
        if response.status != 200:
            return response, []
        try:
            message_id = str(json.loads(response.body)["MessageId"])
            return response, capture(request.json(), message_id=message_id, raw_body=request.body)
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            # moto accepted something we cannot read back: say so instead of losing it silently.
            return aws_error(400, "BadRequestException", f"sandbox could not parse: {exc}"), []

    def bulk(self, request: Request) -> tuple[Response, list[CapturedMessage]]:
        """SendBulkEmail, answered here (moto lacks it) with moto's identities (``ses_bulk``)."""
        region = _region(request)
        self.ensure_identities(region)
        return answer_bulk(request, sender_verified=lambda s: self._verified(region, s))

    def _verified(self, region: str, sender: str) -> bool:
        """moto's rule for SendEmail: the address or its domain is a verified identity."""
        address = addresses([sender])[0] if addresses([sender]) else sender
        domain = address.rpartition("@")[2]
        client = self._moto(region)
        found = client.get_identity_verification_attributes(Identities=[address, domain])
        return bool(found.get("VerificationAttributes"))

    def passthrough(self, request: Request) -> Response:
        self.ensure_identities(_region(request))
        connection = http.client.HTTPConnection(*self._backend, timeout=30)
        try:
            connection.putrequest(
                request.method, request.target, skip_host=True, skip_accept_encoding=True
            )
            for name, value in request.headers.items():
                if name.lower() not in HOP_BY_HOP:
                    connection.putheader(name, value)
            connection.putheader("Content-Length", str(len(request.body)))
            connection.endheaders(request.body)
            answer = connection.getresponse()
            body = answer.read()
        except OSError as exc:
            return aws_error(503, "ServiceUnavailable", f"sandbox: moto backend unreachable: {exc}")
        finally:
            connection.close()
        headers = [(k, v) for k, v in answer.getheaders() if k.lower() not in HOP_BY_HOP]
        headers = [(k, v) for k, v in headers if k.lower() not in {"server", "date"}]
        return Response(answer.status, body, headers)


def _region(request: Request) -> str:
    match = _REGION_RE.search(request.header("Authorization"))
    return match[1] if match else "us-east-1"


def _data(value: Any) -> str:
    return str(value.get("Data", "")) if isinstance(value, dict) else ""


def capture(body: dict[str, Any], *, message_id: str, raw_body: bytes) -> list[CapturedMessage]:
    destination = body.get("Destination") or {}
    envelope = addresses(
        [
            address
            for key in ("ToAddresses", "CcAddresses", "BccAddresses")
            for address in destination.get(key) or []
        ]
    )
    declared_from = addresses([body.get("FromEmailAddress") or ""])
    content = body.get("Content") or {}
    if "Raw" in content:
        recipients, fields = _raw_fields(content["Raw"], envelope, declared_from)
    else:
        recipients, fields = envelope, _simple_fields(content, declared_from, raw_body)
    tags = {
        str(tag.get("Name")): str(tag.get("Value"))
        for tag in body.get("EmailTags") or []
        if isinstance(tag, dict)
    }
    return [
        CapturedMessage(
            provider="ses",
            to=[recipient],
            provider_message_id=message_id,
            metadata=dict(tags),
            **{
                **fields,
                "headers": dict(fields["headers"]),
                "attachments": list(fields["attachments"]),
            },
        )
        for recipient in recipients
    ]


def _raw_fields(
    raw: dict[str, Any], envelope: list[str], declared_from: list[str]
) -> tuple[list[str], dict[str, Any]]:
    """``Content.Raw``: a whole MIME message; recipients from the envelope, else its headers."""
    parsed = parse_mime(base64.b64decode(raw["Data"]))
    fields = {
        "from_email": declared_from[0] if declared_from else parsed.from_email,
        "subject": parsed.subject,
        "text": parsed.text,
        "html": parsed.html,
        "headers": parsed.headers,
        "attachments": parsed.attachments,
        "raw": parsed.raw,
    }
    return envelope or parsed.recipients, fields


def _simple_fields(
    content: dict[str, Any], declared_from: list[str], raw_body: bytes
) -> dict[str, Any]:
    """``Content.Simple``: subject, bodies, headers and attachments as JSON fields."""
    simple = content.get("Simple") or {}
    body_parts = simple.get("Body") or {}
    headers = {
        str(h.get("Name")): str(h.get("Value"))
        for h in simple.get("Headers") or []
        if isinstance(h, dict)
    }
    attachments = []
    for item in simple.get("Attachments") or []:
        content_type = item.get("ContentType") or "application/octet-stream"
        payload = base64.b64decode(item.get("RawContent") or "")
        attachments.append(
            (item.get("FileName", ""), content_type, attachment_content(content_type, payload))
        )
    return {
        "from_email": declared_from[0] if declared_from else "",
        "subject": _data(simple.get("Subject")),
        "text": _data(body_parts.get("Text")),
        "html": _data(body_parts.get("Html")),
        "headers": headers,
        "attachments": attachments,
        "raw": raw_body.decode("utf-8", errors="replace"),
    }
