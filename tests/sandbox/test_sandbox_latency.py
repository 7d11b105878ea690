"""The latency fault as bench/latency.py relies on it: per provider, once per call for the HTTP
APIs and once per message for SMTP, and waited without holding up other connections."""

from __future__ import annotations

import smtplib
import threading
import time
from collections.abc import Callable

import pytest

from sandbox import Fault, Sandbox, SandboxClient

from .helpers import (
    mailgun_client,
    mailgun_send,
    mime_message,
    send,
    sendgrid_client,
    sendgrid_mail,
    ses_client,
    ses_raw,
)

LATENCY = 0.3
CONCURRENT = 6


def _sender(provider: str, sandbox: Sandbox, number: int) -> Callable[[], None]:
    """A send with its client built beforehand (building a boto3 client costs more CPU than
    the latency under test), on a connection of its own."""
    job = f"job-{number}"
    if provider == "sendgrid":
        client = sendgrid_client(sandbox)
        return lambda: client.send(sendgrid_mail(job=job))
    if provider == "mailgun":
        client = mailgun_client(sandbox)
        return lambda: mailgun_send(client, job=job).raise_for_status()
    if provider == "ses":
        client = ses_client(sandbox)
        return lambda: ses_raw(client, job=job)
    smtp = smtplib.SMTP(sandbox.smtp_host, sandbox.smtp_port, timeout=5)
    smtp.login(sandbox.smtp_username, sandbox.smtp_password)

    def smtp_send() -> None:
        smtp.send_message(mime_message(job=job))
        smtp.quit()

    return smtp_send


@pytest.mark.parametrize("provider", ["sendgrid", "mailgun", "ses", "smtp"])
def test_concurrent_calls_wait_their_latency_side_by_side(sandbox: Sandbox, provider) -> None:
    senders = [_sender(provider, sandbox, n) for n in range(CONCURRENT)]
    assert send(provider, sandbox).ok  # warm (the SES emulator's first call sets moto up)
    sandbox.inbox.clear()
    sandbox.faults.set(provider, Fault(latency_ms=int(LATENCY * 1000)))
    errors: list[BaseException] = []
    start = threading.Barrier(CONCURRENT + 1)

    def call(sender: Callable[[], None]) -> None:
        start.wait()
        try:
            sender()
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(s,)) for s in senders]
    for thread in threads:
        thread.start()
    start.wait()
    started = time.monotonic()
    for thread in threads:
        thread.join(10)
    elapsed = time.monotonic() - started
    assert errors == []
    assert sandbox.inbox.stats()[provider]["messages"] == CONCURRENT
    # One after another they would take CONCURRENT * LATENCY (1.8 s); side by side, one latency
    # plus the work, with room for a loaded machine.
    assert LATENCY <= elapsed < CONCURRENT * LATENCY / 2


def test_http_latency_is_per_call_and_smtp_latency_per_message(sandbox: Sandbox) -> None:
    sandbox.faults.set("sendgrid", Fault(latency_ms=int(LATENCY * 1000)))
    sandbox.faults.set("smtp", Fault(latency_ms=int(LATENCY * 1000)))
    client = sendgrid_client(sandbox)
    started = time.monotonic()
    client.send(sendgrid_mail([f"guest{n}@example.org" for n in range(5)]))
    one_call = time.monotonic() - started
    assert LATENCY <= one_call < 2 * LATENCY  # five recipients in one call: one latency

    with smtplib.SMTP(sandbox.smtp_host, sandbox.smtp_port, timeout=5) as smtp:
        smtp.login(sandbox.smtp_username, sandbox.smtp_password)
        started = time.monotonic()
        for n in range(3):
            smtp.send_message(mime_message(f"guest{n}@example.org"))
        three_messages = time.monotonic() - started
    assert three_messages >= 3 * LATENCY  # one connection, three messages: three latencies
    assert sandbox.inbox.stats()["sendgrid"]["messages"] == 5


def test_latency_holds_for_its_provider_alone(sandbox: Sandbox) -> None:
    sandbox.faults.set("sendgrid", Fault(latency_ms=3000))
    started = time.monotonic()
    assert send("smtp", sandbox).ok and send("mailgun", sandbox).ok
    assert time.monotonic() - started < 1.5


def test_last_accepted_time_per_provider_is_kept_until_reset(sandbox: Sandbox) -> None:
    client = SandboxClient(sandbox.http_url)
    before = time.time()
    assert send("mailgun", sandbox).ok
    sandbox.faults.set("sendgrid", Fault(status=500))
    assert not send("sendgrid", sandbox).ok  # a refused call is no acceptance
    last = client.last_accepted()
    assert set(last) == {"mailgun"}
    assert before <= last["mailgun"] <= time.time()
    client.reset()
    assert client.last_accepted() == {}
