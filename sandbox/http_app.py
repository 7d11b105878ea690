"""The sandbox's HTTP application: the SendGrid, Mailgun and SES emulators, the pages and the API.

``App`` routes a ``Request`` to a ``Response`` and applies faults; it knows nothing about sockets
(the server around it is ``sandbox.http_server``).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict
from typing import Any, Protocol
from urllib.parse import quote, unquote, urlsplit

from sandbox import pages
from sandbox.faults import Fault, FaultBook, Verdict, check_provider, decide
from sandbox.inbox import CapturedMessage, Inbox
from sandbox.mime import FormError, parse_form
from sandbox.ses_api import SesEmulator
from sandbox.web import Abort, Request, Response
from sandbox.webhook_keys import SNS_CERT_PATH
from sandbox.webhooks import WebhookPoster

log = logging.getLogger(__name__)


class Emulator(Protocol):
    name: str
    default_status: int

    def matches(self, method: str, path: str) -> bool: ...
    def status_for_code(self, code: str) -> int | None: ...
    def scope(self, request: Request) -> str | None: ...
    def fault_response(self, verdict: Verdict) -> Response: ...
    def handle(self, request: Request) -> tuple[Response, list[CapturedMessage]]: ...


class App:
    """Routing and fault application; knows nothing about sockets."""

    def __init__(
        self,
        inbox: Inbox,
        faults: FaultBook,
        emulators: list[Emulator],
        ses: SesEmulator,
        stopping: threading.Event,
        webhooks: WebhookPoster,
    ) -> None:
        self.webhooks = webhooks
        self.inbox = inbox
        self.faults = faults
        self.emulators = emulators
        self.ses = ses
        self.stopping = stopping

    def __call__(self, request: Request) -> Response:
        for emulator in self.emulators:
            if emulator.matches(request.method, request.path):
                return self._send(emulator, request)
        if self.ses.is_passthrough(request):
            return self.ses.passthrough(request)
        if request.path.startswith("/api/"):
            return self._api(request)
        if request.path == SNS_CERT_PATH and request.method == "GET":
            return self._sns_certificate()
        return self._page(request)

    def _sns_certificate(self) -> Response:
        """What SNS serves at a notification's SigningCertURL: the sandbox's own certificate."""
        target = self.webhooks.target
        if target is None:
            return Response.text(404, "the sandbox posts no events")
        return Response(
            200, target.keys.sns_certificate, [("Content-Type", "application/x-pem-file")]
        )

    def _send(self, emulator: Emulator, request: Request) -> Response:
        provider = emulator.name
        epoch = self.inbox.record_call(provider)
        scope = emulator.scope(request)
        fault = (scope and self.faults.get(f"{provider}:{scope}")) or self.faults.get(provider)
        verdict = decide(
            fault,
            default_status=emulator.default_status,
            status_for_code=emulator.status_for_code,
        )
        try:
            if verdict.outage:
                raise Abort("outage")
            self._wait(verdict.delay)
            self._wait(verdict.hang)
            if verdict.fails:
                self.inbox.record_rejected(provider, faulted=True, epoch=epoch)
                return emulator.fault_response(verdict)
            response, messages = emulator.handle(request)
        except Abort:
            self.inbox.record_rejected(provider, faulted=True, epoch=epoch)
            raise
        except Exception:
            log.exception("sandbox %s emulator failed", provider)
            self.inbox.record_rejected(provider, epoch=epoch)
            return Response.json(500, {"message": "sandbox emulator error"})
        if 200 <= response.status < 300:
            self.inbox.record_accepted(provider, messages, epoch=epoch)
            self.webhooks.accepted(provider, messages, fault.webhook if fault else None)
        else:
            self.inbox.record_rejected(provider, epoch=epoch)
        return response

    def _wait(self, seconds: float) -> None:
        if seconds > 0 and self.stopping.wait(seconds):
            raise Abort("sandbox stopping")

    # JSON API for out-of-process callers.

    def _api(self, request: Request) -> Response:
        parts = [unquote(p) for p in request.path.split("/")[2:] if p]
        method = request.method
        try:
            if parts == ["messages"] and method == "GET":
                found = self.inbox.messages(request.arg("provider"), job=request.arg("job"))
                to = request.arg("to")
                if to:
                    found = [m for m in found if to.lower() in (a.lower() for a in m.to)]
                return Response.json(200, [m.to_dict() for m in found])
            if len(parts) == 2 and parts[0] == "messages" and method == "GET":
                message = self.inbox.get(parts[1])
                if message is None:
                    return Response.json(404, {"error": "no such message"})
                return Response.json(200, message.to_dict())
            if parts == ["webhooks"] and method == "GET":
                return Response.json(200, self._events() or [])
            if parts == ["stats"] and method == "GET":
                return Response.json(200, self.inbox.stats())
            if parts == ["last-accepted"] and method == "GET":
                return Response.json(200, self.inbox.last_accepted())
            if parts == ["faults"] and method == "GET":
                return Response.json(200, self._faults_json())
            if parts and parts[0] == "faults" and method == "DELETE" and len(parts) <= 2:
                self.faults.clear(check_provider(parts[1]) if len(parts) == 2 else None)
                return Response.json(200, self._faults_json())
            if len(parts) == 2 and parts[0] == "faults" and method == "PUT":
                provider = check_provider(parts[1])
                try:
                    data = request.json()
                except (ValueError, UnicodeDecodeError):
                    raise ValueError("the body must be a JSON object") from None
                fault = Fault.from_dict(data)
                self.faults.set(provider, fault)
                return Response.json(200, {"provider": provider, "fault": fault.to_dict()})
            if parts == ["reset"] and method == "POST":
                self.reset()
                return Response.json(200, {"reset": True})
        except (ValueError, TypeError) as exc:
            return Response.json(400, {"error": str(exc)})
        return Response.json(404, {"error": f"no API route {method} {request.path}"})

    def _events(self) -> list[dict[str, Any]] | None:
        """The events posted to the site, oldest first; None when the sandbox posts none."""
        if self.webhooks.target is None:
            return None
        return [asdict(result) for result in self.webhooks.recent()]

    def _faults_json(self) -> dict[str, Any]:
        return {provider: fault.to_dict() for provider, fault in self.faults.all().items()}

    def reset(self) -> None:
        self.faults.clear()
        self.inbox.clear()

    # Pages for people.

    def _page(self, request: Request) -> Response:
        path, method = request.path, request.method
        if method == "GET" and path == "/":
            html = pages.render_index(
                self.inbox.messages(),
                self.inbox.stats(),
                self.faults.all(),
                error=request.arg("error"),
                events=self._events(),
            )
            return _html(200, html)
        if method == "GET" and path.startswith("/messages/"):
            return self._message_page(path.split("/")[2:])
        if method == "POST" and path in {"/faults", "/reset"}:
            if not _same_origin(request):
                return Response.text(403, "cross-origin form posts are refused")
            if path == "/reset":
                self.reset()
                return Response.redirect("/")
            try:
                self._fault_form(request)
            except (ValueError, TypeError, FormError) as exc:
                return Response.redirect("/?error=" + quote(str(exc)))
            return Response.redirect("/")
        if method == "GET" and path == "/favicon.ico":
            return Response(204)
        return _html(404, pages.render_not_found(path))

    def _message_page(self, parts: list[str]) -> Response:
        message = self.inbox.get(unquote(parts[0])) if parts else None
        if message is None:
            return _html(404, pages.render_not_found("message"))
        if len(parts) == 1:
            return _html(200, pages.render_message(message))
        if len(parts) == 3 and parts[1] == "attachments" and parts[2].isdigit():
            index = int(parts[2])
            if index < len(message.attachments):
                filename, _, content = message.attachments[index]
                data = content.encode("utf-8") if isinstance(content, str) else content
                safe_name = "".join(c for c in filename if c.isalnum() or c in "._-") or "file"
                # Never served with its own type: a download, not a page on this origin.
                return Response(
                    200,
                    data,
                    [
                        ("Content-Type", "application/octet-stream"),
                        ("Content-Disposition", f'attachment; filename="{safe_name}"'),
                    ],
                )
        return _html(404, pages.render_not_found("attachment"))

    def _fault_form(self, request: Request) -> None:
        form = parse_form(request.header("Content-Type"), request.body)
        provider = check_provider(form.get("provider") or "")
        if form.get("action") == "clear":
            self.faults.clear(provider)
            return
        text = {name: form.get(name) for name, _ in form.fields}
        percent = (form.get("error_percent") or "").strip()
        if percent:  # the inbox's form says percent; Fault's error_rate is a fraction
            try:
                text["error_rate"] = str(float(percent) / 100)
            except ValueError:
                raise ValueError(f"error rate must be a percentage, not {percent!r}") from None
        fault = Fault.from_text(
            text, hang=form.get("hang") is not None, outage=form.get("outage") is not None
        )
        self.faults.set(provider, fault)


def _html(status: int, html: str) -> Response:
    response = Response.text(status, html, "text/html")
    response.headers += [
        ("Content-Security-Policy", pages.CSP),
        ("X-Content-Type-Options", "nosniff"),
    ]
    return response


def _same_origin(request: Request) -> bool:
    origin = request.header("Origin")
    if not origin:
        return True  # not a browser cross-site post (curl, or an old browser)
    return urlsplit(origin).netloc == request.header("Host")
