"""Inbox pages, the JSON API and SandboxClient, and the sandbox's own lifecycle."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import requests

from sandbox import Fault, PortInUseError, Sandbox, SandboxClient, SandboxError
from sandbox.pages import linkify

from .helpers import ICS, send, sendgrid_client, sendgrid_mail, smtp_send

# --- Pages ------------------------------------------------------------------------------------


def test_inbox_page_lists_messages_escaped(sandbox: Sandbox) -> None:
    sendgrid_client(sandbox).send(
        sendgrid_mail(subject="<script>alert(1)</script>", job="<b>job</b>")
    )
    smtp_send(sandbox, job="smtp-job", subject="Second")

    page = requests.get(sandbox.http_url + "/", timeout=5)

    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "script-src" not in page.headers["Content-Security-Policy"]  # default-src 'none'
    body = page.text
    assert "<script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "&lt;b&gt;job&lt;/b&gt;" in body
    assert body.index("Second") < body.index("alert(1)")  # newest first
    message = sandbox.inbox.messages("sendgrid")[0]
    assert f'href="/messages/{message.id}"' in body


def test_message_page_shows_headers_links_html_and_ics(sandbox: Sandbox) -> None:
    mail = sendgrid_mail(job="job-7")
    sendgrid_client(sandbox).send(mail)
    message = sandbox.inbox.messages()[0]

    page = requests.get(f"{sandbox.http_url}/messages/{message.id}", timeout=5)

    assert page.status_code == 200
    body = page.text
    assert "X-GPMAS-Job" in body and "job-7" in body
    assert '<a href="https://gpmas.local/i/abc" rel="noopener noreferrer"' in body
    assert '<iframe sandbox="allow-popups allow-popups-to-escape-sandbox"' in body
    assert 'srcdoc="&lt;base target=&quot;_blank&quot;&gt;&lt;style&gt;' in body
    assert "&lt;/style&gt;&lt;p&gt;Open &lt;a href=" in body
    assert "BEGIN:VCALENDAR" in body and "invite.ics" in body
    download = requests.get(f"{sandbox.http_url}/messages/{message.id}/attachments/0", timeout=5)
    assert download.content == ICS.encode()
    assert download.headers["Content-Type"] == "application/octet-stream"
    assert requests.get(f"{sandbox.http_url}/messages/nope", timeout=5).status_code == 404


def test_linkify_links_only_http_urls_and_escapes_the_rest() -> None:
    html = linkify('see https://a.test/x?y=1&z=2. or javascript:alert(1) <img src=x onerror="">')
    assert html.startswith('see <a href="https://a.test/x?y=1&amp;z=2"')
    assert "</a>. or javascript:alert(1) &lt;img src=x onerror=&quot;&quot;&gt;" in html


def test_fault_form_sets_and_clears(sandbox: Sandbox) -> None:
    url = sandbox.http_url
    form = {"provider": "ses", "status": "", "code": "Throttling", "error_rate": "0.25"}
    answer = requests.post(f"{url}/faults", data={**form, "action": "set"}, allow_redirects=False)
    assert (answer.status_code, answer.headers["Location"]) == (303, "/")
    assert sandbox.faults.get("ses") == Fault(code="Throttling", error_rate=0.25)
    assert "code=Throttling" in requests.get(url + "/", timeout=5).text

    bad = {"provider": "ses", "error_rate": "7", "action": "set"}
    answer = requests.post(f"{url}/faults", data=bad, allow_redirects=True, timeout=5)
    assert "error_rate must be a number between 0 and 1" in answer.text
    assert sandbox.faults.get("ses") == Fault(code="Throttling", error_rate=0.25)

    hang = {"provider": "smtp", "hang": "on", "hang_seconds": "2", "action": "set"}
    requests.post(f"{url}/faults", data=hang, timeout=5)
    assert sandbox.faults.get("smtp") == Fault(hang=True, hang_seconds=2.0)

    requests.post(f"{url}/faults", data={"provider": "ses", "action": "clear"}, timeout=5)
    assert sandbox.faults.get("ses") is None
    assert sandbox.faults.get("smtp") is not None


def test_cross_origin_form_posts_are_refused(sandbox: Sandbox) -> None:
    answer = requests.post(
        f"{sandbox.http_url}/reset",
        headers={"Origin": "https://evil.test"},
        allow_redirects=False,
        timeout=5,
    )
    assert answer.status_code == 403


def test_faults_never_touch_pages_or_api(sandbox: Sandbox) -> None:
    for provider in ("sendgrid", "mailgun", "ses"):
        sandbox.faults.set(provider, Fault(outage=True))
    assert requests.get(sandbox.http_url + "/", timeout=5).status_code == 200
    assert requests.get(sandbox.http_url + "/api/stats", timeout=5).status_code == 200
    assert sum(s["calls"] for s in sandbox.inbox.stats().values()) == 0


# --- JSON API ---------------------------------------------------------------------------------


def test_client_round_trip(sandbox: Sandbox) -> None:
    client = SandboxClient(sandbox.http_url)
    assert client.is_running()
    send("sendgrid", sandbox, job="a")
    send("smtp", sandbox, job="b")
    send("smtp", sandbox, job="c")

    assert [m.job for m in client.messages("smtp")] == ["b", "c"]
    (only,) = client.messages(job="a")
    assert only == sandbox.inbox.messages(job="a")[0]
    assert only.attachments == [("invite.ics", "text/calendar", ICS)]
    assert client.message(only.id).subject == only.subject
    assert client.wait_for_messages(2, "smtp", timeout=1) == client.messages("smtp")
    assert client.stats()["smtp"]["accepted"] == 2

    stored = client.set_fault("mailgun", status=429, retry_after=5)
    assert stored["status"] == 429 and sandbox.faults.get("mailgun") == Fault(
        status=429, retry_after=5
    )
    assert client.faults() == {"mailgun": stored}
    client.set_fault("ses", latency_ms=10)
    client.clear_faults("mailgun")
    assert set(client.faults()) == {"ses"}
    client.clear_faults()
    assert client.faults() == {}

    client.set_fault("smtp", outage=True)
    client.reset()
    assert client.faults() == {} and client.messages() == []
    assert client.stats()["smtp"]["calls"] == 0


@pytest.mark.parametrize(
    ("provider", "body", "message"),
    [
        ("sendgrid", {"stauts": 500}, "unknown fault field(s): stauts"),
        ("sendgrid", {"error_rate": 1.5}, "error_rate must be a number between 0 and 1"),
        ("sendgrid", {"status": 200}, "status must be an integer between 400 and 599"),
        ("sendgrid", {"hang": "yes"}, "hang must be true or false"),
        ("ses", {"code": "Bad\r\nHeader"}, "code must be a short identifier"),
        ("postmark", {"status": 500}, "unknown provider 'postmark'"),
        ("smtp", [1, 2], "a fault must be a JSON object"),
    ],
)
def test_bad_faults_are_400(sandbox: Sandbox, provider: str, body: object, message: str) -> None:
    answer = requests.put(f"{sandbox.http_url}/api/faults/{provider}", json=body, timeout=5)
    assert answer.status_code == 400
    assert message in answer.json()["error"]
    assert sandbox.faults.all() == {}


def test_non_json_fault_is_400_and_client_raises(sandbox: Sandbox) -> None:
    answer = requests.put(f"{sandbox.http_url}/api/faults/smtp", data=b"{nope", timeout=5)
    assert answer.status_code == 400
    with pytest.raises(SandboxError) as caught:
        SandboxClient(sandbox.http_url).set_fault("smtp", latency_ms=-1)
    assert caught.value.status == 400


def test_unknown_api_route_is_404(sandbox: Sandbox) -> None:
    assert requests.get(f"{sandbox.http_url}/api/nothing", timeout=5).status_code == 404


# --- Lifecycle --------------------------------------------------------------------------------


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_stop_frees_every_port_and_is_idempotent() -> None:
    sandbox = Sandbox().start()
    assert send("smtp", sandbox).ok and send("ses", sandbox).ok
    ports = [int(sandbox.http_url.rsplit(":", 1)[1]), sandbox.smtp_port]
    ports.append(int(sandbox.ses_backend_url.rsplit(":", 1)[1]))
    assert not any(_bindable(port) for port in ports)

    sandbox.stop()
    sandbox.stop()

    assert all(_bindable(port) for port in ports)
    with pytest.raises(requests.ConnectionError):
        requests.get(sandbox.http_url + "/api/stats", timeout=2)


def test_stop_cuts_a_hang_short() -> None:
    sandbox = Sandbox().start()
    sandbox.faults.set("sendgrid", Fault(hang=True, hang_seconds=30))
    outcome: list[object] = []
    caller = threading.Thread(target=lambda: outcome.append(send("sendgrid", sandbox, timeout=20)))
    caller.start()
    assert sandbox.inbox.wait_for(lambda inbox: inbox.stats()["sendgrid"]["calls"] == 1, 5)

    started = time.monotonic()
    sandbox.stop()
    caller.join(5)

    assert time.monotonic() - started < 3
    assert not caller.is_alive()
    assert not outcome[0].ok  # type: ignore[attr-defined]
    assert sandbox.inbox.messages() == []


def test_fixed_port_in_use_is_named() -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        sandbox = Sandbox(smtp_port=port)
        with pytest.raises(
            PortInUseError, match=f"port {port} \\(sandbox SMTP\\) is already in use"
        ):
            sandbox.start()
        assert not sandbox.running
