"""``Sandbox``: every emulator in daemon threads of this process, started and stopped together."""

from __future__ import annotations

import errno
import http.client
import socket
import threading
import time
from types import TracebackType

from sandbox.config import DEFAULTS
from sandbox.faults import FaultBook
from sandbox.http_app import App
from sandbox.http_server import HttpServer
from sandbox.inbox import Inbox
from sandbox.mailgun_api import MailgunEmulator
from sandbox.moto_backend import MotoBackend
from sandbox.sendgrid_api import SendGridEmulator
from sandbox.ses_api import SesEmulator
from sandbox.smtp_sink import SmtpSink
from sandbox.webhook_keys import SNS_CERT_PATH, WebhookKeys
from sandbox.webhooks import WebhookPoster, WebhookTarget


class PortInUseError(OSError):
    """A fixed port the sandbox needs is taken; the message names it."""


def check_port_free(host: str, port: int, what: str) -> None:
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUseError(
                    exc.errno, f"port {port} ({what}) is already in use on {host}"
                ) from None
            raise


class Sandbox:
    """Ports default to 0 (any free port: tests); ``manage.py sandbox`` passes the configured ones.
    Host, credentials and verified domains default to ``sandbox.config.DEFAULTS``."""

    def __init__(
        self,
        *,
        host: str = DEFAULTS.host,
        http_port: int = 0,
        smtp_port: int = 0,
        ses_backend_port: int = 0,
        api_key: str = DEFAULTS.api_key,
        smtp_username: str = DEFAULTS.smtp_username,
        smtp_password: str = DEFAULTS.smtp_password,
        verified_domains: tuple[str, ...] | list[str] = DEFAULTS.verified_domains,
    ) -> None:
        self.host = host
        self.api_key = api_key
        self.smtp_username = smtp_username
        self.smtp_password = smtp_password
        self.verified_domains = tuple(verified_domains)
        self.inbox = Inbox()
        self.faults = FaultBook()
        self.webhooks = WebhookPoster()
        self._ports = {"http": http_port, "smtp": smtp_port, "ses_backend": ses_backend_port}
        self._lock = threading.Lock()
        self._moto: MotoBackend | None = None
        self._http: HttpServer | None = None
        self._smtp: SmtpSink | None = None
        self.http_url = ""
        self.smtp_host = host
        self.smtp_port = 0
        self.ses_backend_url = ""

    @property
    def running(self) -> bool:
        return self._http is not None

    def start(self) -> Sandbox:
        with self._lock:
            if self._http is not None:
                return self
            for key, what in (
                ("http", "sandbox HTTP: SendGrid, Mailgun, SES, inbox"),
                ("smtp", "sandbox SMTP"),
                ("ses_backend", "sandbox SES backend (moto)"),
            ):
                check_port_free(self.host, self._ports[key], what)
            try:
                self._start()
            except BaseException:
                self._stop()
                raise
            return self

    def _start(self) -> None:
        self._moto = MotoBackend(self.host, self._ports["ses_backend"])
        self._moto.start()
        self.ses_backend_url = f"http://{self.host}:{self._moto.port}"
        ses = SesEmulator(self.host, self._moto.port, self.verified_domains)
        ses.ensure_identities("us-east-1")
        app = App(
            self.inbox,
            self.faults,
            [
                SendGridEmulator(self.api_key),
                MailgunEmulator(self.api_key, self.verified_domains),
                ses,
            ],
            ses,
            threading.Event(),
            self.webhooks,
        )
        self._http = HttpServer(app, self.host, self._ports["http"])
        self._http.start()
        self.http_url = f"http://{self.host}:{self._http.port}"
        self._smtp = SmtpSink(
            self.inbox,
            self.faults,
            host=self.host,
            port=self._ports["smtp"],
            username=self.smtp_username,
            password=self.smtp_password,
        )
        self._smtp.start()  # returns once the SMTP server has answered a connection
        self.smtp_port = self._smtp.port
        self._wait_http_answers()
        self.webhooks.start()

    def send_events_to(
        self, url: str, *, secret: str, keys: WebhookKeys | None = None, delay: float = 1.0
    ) -> WebhookKeys:
        """Post delivery events for what the emulators accept to the site at ``url`` (basic auth
        ``secret``), signed with ``keys`` (made here if not given); returns the keys, whose public
        parts the site needs (``sandbox.webhook_keys.site_environment``)."""
        if not self.running:
            raise RuntimeError("start the sandbox first: its URL serves the SNS certificate")
        keys = keys or WebhookKeys.generate()
        target = WebhookTarget(url, secret, keys, self.http_url + SNS_CERT_PATH, delay)
        self.webhooks.configure(target)
        return keys

    def stop_events(self) -> None:
        self.webhooks.configure(None)

    def _wait_http_answers(self, timeout: float = 10.0) -> None:
        assert self._http is not None
        deadline = time.monotonic() + timeout
        while True:
            connection = http.client.HTTPConnection(self.host, self._http.port, timeout=2)
            try:
                connection.request("GET", "/api/stats")
                if connection.getresponse().status == 200:
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise
            finally:
                connection.close()
            time.sleep(0.02)

    def stop(self) -> None:
        with self._lock:
            self._stop()

    def _stop(self) -> None:
        self.webhooks.stop()
        smtp, http, moto = self._smtp, self._http, self._moto
        self._smtp = self._http = self._moto = None
        if smtp is not None:
            smtp.stop()
        if http is not None:
            http.stop()
        if moto is not None:
            moto.stop()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = (
            f"{self.http_url} smtp {self.smtp_host}:{self.smtp_port}" if self.running else "stopped"
        )
        return f"<Sandbox {state}>"
