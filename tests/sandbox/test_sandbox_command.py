"""``manage.py sandbox``: run in the foreground, and drive a running sandbox."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from sandbox import Fault, Sandbox, SandboxClient
from sandbox.management.commands.sandbox import Command
from tests.processes import free_ports

from .helpers import send

ROOT = Path(__file__).resolve().parents[2]

# Stands in for manage.py with no settings at all: the command needs none, its ports come from
# the SANDBOX_* environment variables (sandbox/config.py).
BOOTSTRAP = """
import sys, django
from django.conf import settings
settings.configure()
django.setup()
from sandbox.management.commands.sandbox import Command
Command().run_from_argv(["manage.py", "sandbox", *sys.argv[1:]])
"""


def bootstrap_env(http: int, smtp: int, ses: int) -> dict[str, str]:
    return {
        **os.environ,
        "SANDBOX_HTTP_PORT": str(http),
        "SANDBOX_SMTP_PORT": str(smtp),
        "SANDBOX_SES_BACKEND_PORT": str(ses),
    }


def sandbox_command(*args: str) -> str:
    out = io.StringIO()
    call_command(Command(), *args, stdout=out)
    return out.getvalue()


def test_fault_clear_and_stats(sandbox: Sandbox) -> None:
    url = sandbox.http_url
    out = sandbox_command(
        "fault", "ses", "--code", "Throttling", "--error-rate", "0.5", "--url", url
    )
    assert "ses: code=Throttling, error_rate=0.5" in out
    assert sandbox.faults.get("ses") == Fault(code="Throttling", error_rate=0.5)

    sandbox_command("fault", "smtp", "--outage", "--url", url)
    sandbox_command("fault", "sendgrid", "--status", "429", "--retry-after", "30", "--url", url)
    sandbox_command("fault", "mailgun", "--hang", "--hang-seconds", "3", "--url", url)
    assert sandbox.faults.get("smtp") == Fault(outage=True)
    assert sandbox.faults.get("sendgrid") == Fault(status=429, retry_after=30)
    assert sandbox.faults.get("mailgun") == Fault(hang=True, hang_seconds=3.0)

    assert not send("smtp", sandbox).ok
    stats = sandbox_command("stats", "--url", url)
    assert "smtp" in stats and "outage=True" in stats
    assert [line.split()[:2] for line in stats.splitlines() if line.startswith("smtp")] == [
        ["smtp", "1"]
    ]

    sandbox_command("clear", "smtp", "--url", url)
    assert sandbox.faults.get("smtp") is None and sandbox.faults.get("ses") is not None
    sandbox_command("clear", "--url", url)
    assert sandbox.faults.all() == {}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fault", "postmark", "--status", "500"], "unknown provider 'postmark'"),
        (["fault", "ses", "--error-rate", "1.5"], "error-rate must be a number between 0 and 1"),
        (["fault", "ses", "--error-rate", "lots"], "--error-rate must be a number, not 'lots'"),
        (["fault", "smtp", "--status", "250"], "status must be an integer between 400 and 599"),
        (["clear", "postmark"], "unknown provider 'postmark'"),
    ],
)
def test_bad_arguments_are_one_line_command_errors(
    sandbox: Sandbox, args: list[str], message: str
) -> None:
    with pytest.raises(CommandError) as caught:
        sandbox_command(*args, "--url", sandbox.http_url)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert sandbox.faults.all() == {}


def test_not_running_is_a_command_error() -> None:
    (port,) = free_ports(1)
    with pytest.raises(CommandError, match=f"not running at http://127.0.0.1:{port}"):
        sandbox_command("stats", "--url", f"http://127.0.0.1:{port}")


def test_run_in_the_foreground_until_sigterm() -> None:
    http, smtp, ses = free_ports(3)
    process = subprocess.Popen(
        [sys.executable, "-c", BOOTSTRAP],
        cwd=ROOT,
        env=bootstrap_env(http, smtp, ses),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(30, process.kill)  # never wait for a wedged child
    watchdog.start()
    try:
        assert process.stdout is not None
        banner = [process.stdout.readline() for _ in range(2)]  # blocks until it has started
        assert f"inbox     http://127.0.0.1:{http}/" in banner[1], banner
        client = SandboxClient(f"http://127.0.0.1:{http}")
        assert client.stats()["smtp"]["calls"] == 0
        with socket.create_connection(("127.0.0.1", smtp), timeout=5) as conn:
            assert conn.recv(100).startswith(b"220 ")

        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    finally:
        watchdog.cancel()
        process.kill()
        process.wait()
    assert process.returncode == 0, err
    assert "sandbox stopped" in out
    assert not client.is_running()


def test_run_with_a_taken_port_exits_with_one_line() -> None:
    http, smtp, ses = free_ports(3)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", ses))
        squatter.listen()
        result = subprocess.run(
            [sys.executable, "-c", BOOTSTRAP, "run"],
            cwd=ROOT,
            env=bootstrap_env(http, smtp, ses),
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"CommandError: port {ses} (sandbox SES backend (moto)) is already in use on 127.0.0.1"
    ]


def test_run_posts_signed_events_to_the_site_it_is_given(tmp_path) -> None:
    """With SANDBOX_WEBHOOK_* set (as ./dev up sets them), the foreground sandbox posts a
    SendGrid copy's event to the site, signed with the key kept in the keys directory, and
    serves the SNS certificate of the key kept there."""
    import base64
    import json
    import time

    import requests
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from sandbox.webhook_keys import SNS_CERT_PATH, WebhookKeys
    from tests.sandbox.recording_site import Site

    site = Site()
    http, smtp, ses = free_ports(3)
    env = {
        **bootstrap_env(http, smtp, ses),
        "SANDBOX_WEBHOOK_URL": site.url,
        "SANDBOX_WEBHOOK_SECRET": "hooks:s3cret",
        "SANDBOX_WEBHOOK_KEYS_DIR": str(tmp_path / "keys"),
        "SANDBOX_EVENT_DELAY_MS": "0",
    }
    process = subprocess.Popen(
        [sys.executable, "-c", BOOTSTRAP], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    watchdog = threading.Timer(30, process.kill)
    watchdog.start()
    try:
        assert process.stdout is not None
        banner = [process.stdout.readline() for _ in range(9)]
        assert f"events    posted to {site.url}/webhooks/" in banner[-1], banner
        keys = WebhookKeys.load_or_create(tmp_path / "keys")  # made by the sandbox
        sandbox_url = f"http://127.0.0.1:{http}"
        assert send("sendgrid", SimpleNamespace(http_url=sandbox_url)).ok
        deadline = time.monotonic() + 10
        while not site.posts and time.monotonic() < deadline:
            time.sleep(0.05)
        [(path, headers, body)] = site.posts
        assert path == "/webhooks/sendgrid/tracking/"
        assert json.loads(body)[0]["event"] == "delivered"
        signed = headers["X-Twilio-Email-Event-Webhook-Timestamp"].encode() + body
        signature = base64.b64decode(headers["X-Twilio-Email-Event-Webhook-Signature"])
        keys.sendgrid.public_key().verify(signature, signed, ec.ECDSA(hashes.SHA256()))
        cert = requests.get(sandbox_url + SNS_CERT_PATH, timeout=5).content
        assert cert.startswith(b"-----BEGIN CERTIFICATE-----")
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=10)
    finally:
        watchdog.cancel()
        process.kill()
        process.wait()
        site.close()
