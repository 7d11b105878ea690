"""The latency benchmark's peers (bench/latency.py): django-post-office (with django-anymail for
the HTTP providers) and bare SDK loops, each handing the same invitation-sized messages to the
sandbox's emulator with its latency on, or for SMTP to the latency relay (bench/latency_sink.py);
and the clock they all stop at, the emulator's or the relay's last acceptance."""

from __future__ import annotations

import concurrent.futures
import smtplib
import threading
import time
import warnings
from email.message import EmailMessage

from bench.fanout import FROM_EMAIL, draft
from bench.latency_sink import LatencySink
from bench.stack import wait_until


def html(d: dict) -> str:
    """An HTML part beside the text, as GPMAS's invitations have: the sandbox parses every
    message it accepts, and a two-part message costs it more than a plain one."""
    return "<p>" + d["text_body"].replace("\n\n", "</p><p>").replace("\n", "<br>") + "</p>"


SDK = {"sendgrid": "sendgrid SDK", "mailgun": "mailgun SDK", "smtp": "smtplib"}


def sandbox_with_latency(kind: str, latency_ms: int):
    """The sandbox's client, its inbox and stats emptied, ``kind`` answering in ``latency_ms``;
    for SMTP the latency relay, emptied, read through the same two calls."""
    if kind == "smtp":
        relay = smtp_relay(latency_ms)
        relay.reset()
        return RelayClock(relay)
    from sandbox import config
    from sandbox.client import SandboxClient

    client = SandboxClient(config.load().http_url)
    client.reset()
    client.set_fault(kind, latency_ms=latency_ms)
    return client


def wait_for_acceptance(sandbox, kind: str, count: int, started: float) -> float:
    """Wait until the emulator accepted ``count`` messages; the time it recorded the last."""
    wait_until(
        lambda: sandbox.stats()[kind]["messages"] >= count,
        timeout=max(120, count / 10),
        interval=0.1,
        what=f"{count} messages accepted by the {kind} emulator",
    )
    last = sandbox.last_accepted()[kind]
    assert last >= started, "the emulator's last acceptance is older than the run"
    return last


# --- SMTP: the latency relay --------------------------------------------------------------
_relay: LatencySink | None = None


def smtp_relay(latency_ms: int) -> LatencySink:
    """The relay answering each message in ``latency_ms``, started on first use; it takes the
    sandbox's SMTP credentials, so every contestant logs in as it would at the sandbox."""
    global _relay
    if _relay is None or _relay.delay_ms != latency_ms:
        from sandbox import config

        stop_smtp_relay()
        sandbox = config.load()
        _relay = LatencySink(latency_ms, sandbox.smtp_username, sandbox.smtp_password)
    return _relay


def stop_smtp_relay() -> None:
    global _relay
    if _relay is not None:
        _relay.stop()
        _relay = None


class RelayClock:
    """The relay, read as the sandbox client is (``stats()[kind]``, ``last_accepted()[kind]``),
    plus ``check(count)``: every guest got exactly its message, and the relay's CPU for it."""

    def __init__(self, relay: LatencySink) -> None:
        self.relay = relay
        self.cpu_at_reset = relay.cpu_seconds()

    def stats(self) -> dict:
        stats = self.relay.stats()
        return {"smtp": {**stats, "calls": stats["messages"]}}  # one DATA, one call

    def last_accepted(self) -> dict:
        return {"smtp": self.relay.stats()["last_accepted"]}

    def check(self, count: int) -> tuple[bool, str]:
        cpu = self.relay.cpu_seconds() - self.cpu_at_reset
        problems = self.relay.verify({draft(i)["to_email"] for i in range(count)})
        verdict = problems or "each guest got its one message"
        most = self.relay.stats()["most_connections"]
        return not problems, (
            f"{verdict}; at most {most} connections at once; relay CPU "
            f"{cpu / count * 1e6:.0f} us/msg"
        )


def check_relay(sandbox, count: int) -> tuple[bool, str]:
    """For an SMTP run, the relay's check; nothing to add for the sandbox's emulators."""
    return sandbox.check(count) if isinstance(sandbox, RelayClock) else (True, "")


def _use_relay(relay: LatencySink) -> None:
    """Django's SMTP backend at the latency relay, with the sandbox's credentials (the fan-out
    benchmark points it elsewhere)."""
    from django.conf import settings

    from sandbox import config

    sandbox = config.load()
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", relay.port
    settings.EMAIL_HOST_USER = sandbox.smtp_username
    settings.EMAIL_HOST_PASSWORD = sandbox.smtp_password


def post_office_run(kind: str, count: int, latency_ms: int) -> dict:
    """post-office's ``send_queued`` with its default threads, the clock from ``send_many``."""
    from post_office import mail
    from post_office.models import STATUS, Email

    # anymail warns on every SendGrid backend it builds (one per thread) that it dropped
    # official support for SendGrid; the backend still works.
    warnings.filterwarnings("ignore", module="anymail")
    Email.objects.all().delete()
    sandbox = sandbox_with_latency(kind, latency_ms)
    if kind == "smtp":
        _use_relay(sandbox.relay)
    backend = "default" if kind == "smtp" else kind
    started = time.time()
    mail.send_many(
        [
            {
                "sender": FROM_EMAIL,
                "recipients": [d["to_email"]],
                "subject": d["subject"],
                "message": d["text_body"],
                "html_message": html(d),
                "backend": backend,
            }
            for d in map(draft, range(count))
        ]
    )
    mail.send_queued_mail_until_done(processes=1, log_level=0)
    last = wait_for_acceptance(sandbox, kind, count, started)
    sent = Email.objects.filter(status=STATUS.sent).count()
    stats = sandbox.stats()[kind]
    delivered, verdict = check_relay(sandbox, count)
    return {
        "seconds": last - started,
        "calls": stats["calls"],
        "check": f"{sent}/{count} sent, {stats['messages']} at the emulator in "
        f"{stats['calls']} calls" + (f"; {verdict}" if verdict else ""),
        "ok": sent == count == stats["messages"] and delivered,
    }


# --- bare loops: one message per call, a client per thread --------------------------------
def _sendgrid_sender():
    from sendgrid import SendGridAPIClient

    from sandbox import config

    sandbox = config.load()
    client = SendGridAPIClient(api_key=sandbox.api_key, host=sandbox.http_url)
    client.client.timeout = 20

    def send(d: dict) -> None:
        client.client.mail.send.post(
            request_body={
                "personalizations": [{"to": [{"email": d["to_email"]}]}],
                "from": {"email": "bench@example.com", "name": "GPMAS Bench"},
                "subject": d["subject"],
                "content": [
                    {"type": "text/plain", "value": d["text_body"]},
                    {"type": "text/html", "value": html(d)},
                ],
            }
        )

    return send, None


def _mailgun_sender():
    from mailgun.client import Client
    from mailgun.config import RetryPolicy

    from sandbox import config
    from sandbox.providers import MAILGUN_DOMAIN

    sandbox = config.load()
    client = Client(
        auth=("api", sandbox.api_key),
        api_url=sandbox.http_url,
        timeout=(5, 20),
        retry_policy=RetryPolicy(max_retries=0),
    )

    def send(d: dict) -> None:
        data = {"from": FROM_EMAIL, "to": d["to_email"], "subject": d["subject"]}
        response = client.messages.create(
            data={**data, "text": d["text_body"], "html": html(d)}, domain=MAILGUN_DOMAIN
        )
        response.raise_for_status()

    return send, None


def _smtp_sender():
    from sandbox import config

    sandbox = config.load()
    connection = smtplib.SMTP("127.0.0.1", _relay.port, timeout=20)
    connection.login(sandbox.smtp_username, sandbox.smtp_password)

    def send(d: dict) -> None:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = FROM_EMAIL, d["to_email"], d["subject"]
        message.set_content(d["text_body"])
        message.add_alternative(html(d), subtype="html")
        connection.send_message(message)

    return send, connection.quit


SENDERS = {"sendgrid": _sendgrid_sender, "mailgun": _mailgun_sender, "smtp": _smtp_sender}


def bare_run(kind: str, count: int, latency_ms: int, connections: int) -> dict:
    """``connections`` threads, each with its own client or SMTP connection (opened before the
    clock), sending its share one message per call. Latency-bound: threads serve as well as
    processes here."""
    sandbox = sandbox_with_latency(kind, latency_ms)
    senders = [SENDERS[kind]() for _ in range(connections)]
    go = threading.Barrier(connections + 1)

    def share(number: int) -> int:
        send, close = senders[number]
        go.wait()
        mine = range(number, count, connections)
        for i in mine:
            send(draft(i))
        if close:
            close()
        return len(mine)

    with concurrent.futures.ThreadPoolExecutor(connections) as pool:
        futures = [pool.submit(share, n) for n in range(connections)]
        go.wait()
        started = time.time()
        done = sum(f.result() for f in futures)
    last = wait_for_acceptance(sandbox, kind, count, started)
    stats = sandbox.stats()[kind]
    delivered, verdict = check_relay(sandbox, count)
    return {
        "seconds": last - started,
        "calls": stats["calls"],
        "check": f"{done}/{count} sent, {stats['messages']} at the emulator"
        + (f"; {verdict}" if verdict else ""),
        "ok": done == count == stats["messages"] and delivered,
    }
