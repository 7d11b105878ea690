"""``manage.py sandbox``: run the provider emulators, or set faults on the running ones.

    manage.py sandbox [run]                 foreground, until Ctrl-C / SIGTERM
    manage.py sandbox fault PROVIDER [--status N] [--code C] [--error-rate F] [--latency-ms N]
                                     [--hang [--hang-seconds S]] [--outage] [--retry-after N]
                                     [--webhook duplicate|stale|bad_signature]
    manage.py sandbox clear [PROVIDER]
    manage.py sandbox stats [--json]
    manage.py sandbox setup                 create/update the Provider rows pointing at it

Ports and credentials come from the SANDBOX_* environment variables (sandbox/config.py); the
sandbox is described in docs/sandbox.md.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import threading
from typing import Any

import requests
from django.core.management.base import BaseCommand, CommandError, CommandParser

from sandbox import PROVIDERS, Fault, PortInUseError, Sandbox, SandboxClient, SandboxError
from sandbox.config import load
from sandbox.faults import WEBHOOK_FAULTS


def as_flag(message: str) -> str:
    """``error_rate must be …`` -> ``--error-rate must be …``: name the flag the user typed."""
    field, _, rest = message.partition(" ")
    if field in {f.name for f in dataclasses.fields(Fault)}:
        return f"--{field.replace('_', '-')} {rest}"
    return message


class Command(BaseCommand):
    help = "Run the local email provider emulators (SendGrid, Mailgun, SES, SMTP) or drive them."
    requires_system_checks: list[str] = []  # needs no database, no apps

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", metavar="{run,fault,clear,stats,setup}")
        run = actions.add_parser("run", help="run the sandbox in the foreground (the default)")
        run.add_argument("--host", help="address to listen on (default SANDBOX_HOST or 127.0.0.1)")

        fault = actions.add_parser("fault", help="set a provider's fault on the running sandbox")
        fault.add_argument("provider", help=f"one of {', '.join(PROVIDERS)}")
        fault.add_argument("--status", help="answer every call with this status / SMTP code")
        fault.add_argument("--code", help="provider error code (SES), e.g. Throttling")
        fault.add_argument("--error-rate", help="fraction 0..1 of calls that fail")
        fault.add_argument("--latency-ms", help="delay added to every call")
        fault.add_argument("--hang", action="store_true", help="never answer in time")
        fault.add_argument("--hang-seconds", help="how long a hang lasts (default 30)")
        fault.add_argument("--outage", action="store_true", help="drop every connection")
        fault.add_argument("--retry-after", help="seconds, sent with a 429")
        fault.add_argument(
            "--webhook",
            choices=WEBHOOK_FAULTS,
            help="what happens to the delivery events it posts: replayed, backdated, mis-signed",
        )
        self._add_url(fault)

        clear = actions.add_parser("clear", help="clear one provider's fault, or all")
        clear.add_argument("provider", nargs="?")
        self._add_url(clear)

        stats = actions.add_parser("stats", help="per-provider call counts")
        stats.add_argument("--json", action="store_true", help="print JSON")
        self._add_url(stats)

        actions.add_parser("setup", help="create or update the sandbox Provider rows")

    @staticmethod
    def _add_url(parser: CommandParser) -> None:
        parser.add_argument("--url", help="the sandbox's HTTP URL (default from SANDBOX_HTTP_PORT)")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options.get("action") or "run"
        if action == "run":
            self._run(options.get("host"))
            return
        if action == "setup":
            self._setup()
            return
        client = SandboxClient(options.get("url") or load().http_url)
        try:
            if action == "fault":
                self._fault(client, options)
            elif action == "clear":
                provider = options.get("provider")
                if provider is not None:
                    self._check_provider(provider)
                client.clear_faults(provider)
                self.stdout.write(
                    f"cleared the fault of {provider}" if provider else "cleared all faults"
                )
            elif action == "stats":
                self._stats(client, as_json=options.get("json", False))
        except requests.ConnectionError:
            raise CommandError(
                f"the sandbox is not running at {client.http_url} (start it: manage.py sandbox)"
            ) from None
        except requests.RequestException as exc:
            raise CommandError(f"the sandbox at {client.http_url} did not answer: {exc}") from None
        except SandboxError as exc:
            raise CommandError(exc.message) from None
        finally:
            client.close()

    def _setup(self) -> None:
        from sandbox.providers import configure_sandbox_providers

        config = load()
        rows = configure_sandbox_providers(
            http_url=config.http_url, smtp_host="127.0.0.1", smtp_port=config.smtp_port
        )
        self.stdout.write(f"sandbox providers: {', '.join(row.name for row in rows)}")

    @staticmethod
    def _check_provider(provider: str) -> None:
        if provider not in PROVIDERS:
            raise CommandError(
                f"unknown provider {provider!r}; expected one of {', '.join(PROVIDERS)}"
            )

    def _fault(self, client: SandboxClient, options: dict[str, Any]) -> None:
        provider = options["provider"]
        self._check_provider(provider)
        try:
            fault = Fault.from_text(
                options, hang=bool(options.get("hang")), outage=bool(options.get("outage"))
            )
        except ValueError as exc:
            raise CommandError(as_flag(str(exc))) from None
        stored = client.set_fault(provider, **fault.to_dict())
        shown = ", ".join(f"{k}={v}" for k, v in stored.items() if v != getattr(Fault(), k))
        self.stdout.write(f"{provider}: {shown or 'no fault'}")

    def _stats(self, client: SandboxClient, *, as_json: bool) -> None:
        stats = client.stats()
        faults = client.faults()
        if as_json:
            self.stdout.write(json.dumps({"stats": stats, "faults": faults}, indent=2))
            return
        columns = ["calls", "accepted", "rejected", "faulted", "messages", "in_flight"]
        self.stdout.write(f"{'provider':<10}" + "".join(f"{c:>10}" for c in columns) + "  fault")
        for provider in PROVIDERS:
            counts = stats.get(provider, {})
            fault = faults.get(provider)
            shown = (
                ", ".join(f"{k}={v}" for k, v in fault.items() if v != getattr(Fault(), k))
                if fault
                else "-"
            )
            self.stdout.write(
                f"{provider:<10}"
                + "".join(f"{counts.get(c, 0):>10}" for c in columns)
                + f"  {shown}"
            )

    @staticmethod
    def _send_events(sandbox: Sandbox, config) -> str:
        """Post delivery events to the site of ``SANDBOX_WEBHOOK_URL``; the banner's line."""
        from pathlib import Path

        from sandbox.webhook_keys import WebhookKeys

        directory = config.webhook_keys_dir
        keys = WebhookKeys.load_or_create(Path(directory)) if directory else None
        sandbox.send_events_to(
            config.webhook_url,
            secret=config.webhook_secret,
            keys=keys,
            delay=config.event_delay_ms / 1000,
        )
        return f"  events    posted to {config.webhook_url}/webhooks/<provider>/tracking/"

    def _run(self, host: str | None) -> None:
        config = load()
        sandbox = Sandbox(
            host=host or config.host,
            http_port=config.http_port,
            smtp_port=config.smtp_port,
            ses_backend_port=config.ses_backend_port,
            api_key=config.api_key,
            smtp_username=config.smtp_username,
            smtp_password=config.smtp_password,
            verified_domains=config.verified_domains,
        )
        try:
            sandbox.start()
        except PortInUseError as exc:
            raise CommandError(exc.strerror) from None
        except OSError as exc:
            raise CommandError(f"the sandbox could not start: {exc}") from None
        events = "  events    none (SANDBOX_WEBHOOK_URL unset)"
        if config.webhook_url:
            events = self._send_events(sandbox, config)

        stop = threading.Event()
        previous = {
            signum: signal.signal(signum, lambda *_: stop.set())
            for signum in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            url = sandbox.http_url
            domains = ", ".join(sandbox.verified_domains)
            self.stdout.write(
                "GPMAS sandbox running (Ctrl-C stops it)\n"
                f"  inbox     {url}/\n"
                f"  SendGrid  host={url}  (POST /v3/mail/send, Bearer SANDBOX_API_KEY)\n"
                f"  Mailgun   api_url={url}  (POST /v3/<domain>/messages, api:SANDBOX_API_KEY)\n"
                f"  SES v2    endpoint_url={url}  (moto on {sandbox.ses_backend_url})\n"
                f"  SMTP      {sandbox.smtp_host}:{sandbox.smtp_port}  "
                f"(AUTH {sandbox.smtp_username} / SANDBOX_SMTP_PASSWORD, or none)\n"
                f"  verified  {domains}\n"
                f"  API       {url}/api/messages  /api/stats  /api/faults\n{events}"
            )
            self.stdout.flush()
            while not stop.wait(1.0):
                pass
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            sandbox.stop()
        self.stdout.write("sandbox stopped")
