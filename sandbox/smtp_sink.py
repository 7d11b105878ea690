"""SMTP sink: an aiosmtpd server that captures every message and takes faults.

AUTH PLAIN/LOGIN is offered without TLS and checked; unauthenticated sending is allowed too.
One connection may carry many messages. Faults act at DATA (after the content is read), except
``outage`` (421 on connect, then close) and status 535 (AUTH fails; an unauthenticated DATA
gets 535 as well, so every send fails).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from sandbox.faults import FaultBook, Verdict, decide
from sandbox.inbox import CapturedMessage, Inbox
from sandbox.mime import parse_mime

log = logging.getLogger(__name__)

REPLIES = {
    421: "4.3.2 Service not available, closing transmission channel",
    450: "4.2.1 Mailbox unavailable",
    451: "4.3.0 Local error in processing",
    452: "4.3.1 Insufficient system storage",
    454: "4.7.0 Temporary failure, try again later",
    535: "5.7.8 Authentication credentials invalid",
    550: "5.1.1 Mailbox unavailable",
    552: "5.3.4 Message size exceeds fixed limit",
    553: "5.1.3 Mailbox name not allowed",
    554: "5.7.1 Transaction failed",
}


def reply(status: int, code: str | None = None) -> str:
    text = REPLIES.get(status, f"{status // 100}.0.0 Error")
    detail = f" ({code})" if code else ""
    return f"{status} {text}{detail} [sandbox fault]"


class _DropLoginDataWarning(logging.Filter):
    # aiosmtpd warns that Session.login_data is deprecated on every successful AUTH, from its
    # own code; it says nothing about us.
    def filter(self, record: logging.LogRecord) -> bool:
        return "login_data is deprecated" not in record.getMessage()


_aiosmtpd_log = logging.getLogger("mail.log")
_aiosmtpd_log.addFilter(_DropLoginDataWarning())


class _SinkSMTP(SMTP):
    def __init__(self, handler: SinkHandler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._sink = handler

    async def _handle_client(self) -> None:
        fault = self._sink.faults.get("smtp")
        if fault is not None and fault.outage:
            self._sink.inbox.record_call("smtp")
            self._sink.inbox.record_rejected("smtp", faulted=True)
            await self.push(reply(421))  # push() closes the connection after a 421
            return
        await super()._handle_client()

    async def push(self, status: str | bytes) -> None:
        await super().push(status)
        text = status.decode("ascii", "replace") if isinstance(status, bytes) else status
        if text.startswith("421") and self.transport is not None:
            self.transport.close()


class SinkHandler:
    """aiosmtpd handler: AUTH check, DATA faults and capture."""

    def __init__(self, inbox: Inbox, faults: FaultBook, username: str, password: str) -> None:
        self.inbox = inbox
        self.faults = faults
        self._username = username.encode()
        self._password = password.encode()
        self._tasks: set[asyncio.Task[str]] = set()

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        fault = self.faults.get("smtp")
        if fault is not None and fault.status == 535 and decide(fault, default_status=451).fails:
            self._count_failed_login(session, faulted=True)
            return AuthResult(success=False, handled=False)
        ok = (
            isinstance(auth_data, LoginPassword)
            and hmac.compare_digest(auth_data.login, self._username)
            and hmac.compare_digest(auth_data.password, self._password)
        )
        if not ok:
            self._count_failed_login(session, faulted=False)
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=auth_data)

    def _count_failed_login(self, session: Session, *, faulted: bool) -> None:
        # A failed login is a failed send attempt, like an HTTP 401. smtplib's login() tries
        # every offered mechanism in turn, so count one per connection, not one per mechanism.
        if getattr(session, "sandbox_login_failed", False):
            return
        session.sandbox_login_failed = True  # type: ignore[attr-defined]
        self.inbox.record_call("smtp")
        self.inbox.record_rejected("smtp", faulted=faulted)

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses
    ) -> list[str]:
        # aiosmtpd answers commands one line at a time, in order, so commands a client sends
        # together are answered as RFC 2920 asks: advertise PIPELINING, as the providers' SMTP
        # endpoints do. (With this hook, the session's host name is ours to set.)
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        epoch = self.inbox.record_call("smtp")
        verdict = decide(self.faults.get("smtp"), default_status=451)
        if verdict.outage:
            self.inbox.record_rejected("smtp", faulted=True, epoch=epoch)
            return reply(421)
        content = bytes(envelope.original_content or b"")
        # Shielded: when a client gives up during a hang, the message may still be accepted,
        # like at a real provider (the client cannot tell).
        task = asyncio.ensure_future(
            self._finish(verdict, content, list(envelope.rcpt_tos), envelope.mail_from or "", epoch)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(task)

    async def _finish(
        self, verdict: Verdict, content: bytes, rcpt_tos: list[str], mail_from: str, epoch: int
    ) -> str:
        try:
            if verdict.delay:
                await asyncio.sleep(verdict.delay)
            if verdict.hang:
                await asyncio.sleep(verdict.hang)
        except asyncio.CancelledError:  # the sandbox is stopping: the call is cut off
            self.inbox.record_rejected("smtp", faulted=True, epoch=epoch)
            raise
        if verdict.status is not None:
            self.inbox.record_rejected("smtp", faulted=True, epoch=epoch)
            return reply(verdict.status, verdict.code)
        try:
            parsed = parse_mime(content)
        except Exception:  # the content is untrusted; never let it kill the session
            log.exception("sandbox SMTP: unparsable message")
            self.inbox.record_rejected("smtp", epoch=epoch)
            return "554 5.6.0 Message could not be parsed"
        queue_id = secrets.token_hex(6).upper()
        self.inbox.record_accepted(
            "smtp",
            [
                CapturedMessage(
                    provider="smtp",
                    to=[recipient],
                    from_email=parsed.from_email or mail_from,
                    subject=parsed.subject,
                    text=parsed.text,
                    html=parsed.html,
                    headers=dict(parsed.headers),
                    attachments=list(parsed.attachments),
                    provider_message_id=queue_id,
                    raw=parsed.raw,
                )
                for recipient in rcpt_tos
            ],
            epoch=epoch,
        )
        return f"250 2.0.0 Ok: queued as {queue_id}"


class _Controller(Controller):
    def factory(self) -> SMTP:
        return _SinkSMTP(self.handler, **self.SMTP_kwargs)

    def _trigger_server(self) -> None:
        # Port 0 asks the OS for a free port; learn it before aiosmtpd connects to itself.
        if self.port == 0 and self.server is not None:
            self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class SmtpSink:
    def __init__(
        self,
        inbox: Inbox,
        faults: FaultBook,
        *,
        host: str,
        port: int,
        username: str,
        password: str,
    ) -> None:
        self.handler = SinkHandler(inbox, faults, username, password)
        self._controller = _Controller(
            self.handler,
            hostname=host,
            port=port,
            ready_timeout=5.0,
            server_hostname="sandbox.gpmas.local",  # else aiosmtpd calls getfqdn(): slow offline
            ident="GPMAS sandbox SMTP",
            authenticator=self.handler.authenticate,
            auth_require_tls=False,
            auth_required=False,
            decode_data=False,
        )
        self._running = False

    @property
    def port(self) -> int:
        return self._controller.port

    def start(self) -> None:
        if _aiosmtpd_log.level == logging.NOTSET:
            # One INFO line per SMTP command is noise in a dev console.
            _aiosmtpd_log.setLevel(logging.WARNING)
        self._controller.start()
        self._running = True

    def stop(self) -> None:
        if self._running:
            self._running = False
            self._controller.stop()
