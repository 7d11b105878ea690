"""The latency benchmark's peers (bench/latency.py): django-post-office (with django-anymail for
the HTTP providers) and bare SDK loops, each handing the same invitation-sized messages to the
sandbox's emulator with its latency on; and the sandbox clock they all stop at."""

from __future__ import annotations

import concurrent.futures
import smtplib
import threading
import time
import warnings
from email.message import EmailMessage

from bench.fanout import FROM_EMAIL, draft
from bench.stack import wait_until


def html(d: dict) -> str:
    """An HTML part beside the text, as GPMAS's invitations have: the sandbox parses every
    message it accepts, and a two-part message costs it more than a plain one."""
    return "<p>" + d["text_body"].replace("\n\n", "</p><p>").replace("\n", "<br>") + "</p>"


SDK = {"sendgrid": "sendgrid SDK", "mailgun": "mailgun SDK", "smtp": "smtplib"}


def sandbox_with_latency(kind: str, latency_ms: int):
    """The sandbox's client, its inbox and stats emptied, ``kind`` answering in ``latency_ms``."""
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


def _use_sandbox_smtp() -> None:
    """Django's SMTP backend at the sandbox sink (the fan-out benchmark points it elsewhere)."""
    from django.conf import settings

    from sandbox import config

    sandbox = config.load()
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", sandbox.smtp_port
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
    _use_sandbox_smtp()
    sandbox = sandbox_with_latency(kind, latency_ms)
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
    return {
        "seconds": last - started,
        "calls": stats["calls"],
        "check": f"{sent}/{count} sent, {stats['messages']} at the emulator in "
        f"{stats['calls']} calls",
        "ok": sent == count == stats["messages"],
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
    connection = smtplib.SMTP("127.0.0.1", sandbox.smtp_port, timeout=20)
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
    return {
        "seconds": last - started,
        "calls": stats["calls"],
        "check": f"{done}/{count} sent, {stats['messages']} at the emulator",
        "ok": done == count == stats["messages"],
    }
