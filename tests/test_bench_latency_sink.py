"""The SMTP latency world's relay (bench/latency_sink.py), as bench/latency.py relies on it: each
message answered a fixed delay after its data, connections side by side, the data read whole
through dot-stuffing, and every way a delivery can go wrong told apart from a sent message."""

from __future__ import annotations

import asyncio
import smtplib
import socket
import threading
import time

import pytest

from bench.latency_sink import RelayControl, listen
from delivery.message import JOB_HEADER, OutgoingMessage
from delivery.providers.base import ProviderConfig
from delivery.providers.smtp import SmtpAdapter

USER, PASSWORD = "relay-user", "relay-secret"
DELAY = 0.3
CONNECTIONS = 6


@pytest.fixture
def start_relay():
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    servers = []

    def start(delay_ms: float) -> RelayControl:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        coroutine = listen(port, delay_ms, USER, PASSWORD)
        servers.append(asyncio.run_coroutine_threadsafe(coroutine, loop).result(5))
        return RelayControl(port)

    yield start
    for server in servers:
        loop.call_soon_threadsafe(server.close)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


def connect(relay: RelayControl) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", relay.port, timeout=5)
    client.login(USER, PASSWORD)
    return client


def raw(to: str, *, to_header: str | None = None, body: bytes = b"Hello.\r\n") -> bytes:
    return (
        f"From: bench@example.com\r\nTo: {to_header or to}\r\nSubject: hi\r\n\r\n".encode() + body
    )


def test_messages_wait_their_delay_side_by_side_and_one_after_another_on_one_connection(
    start_relay,
) -> None:
    relay = start_relay(DELAY * 1000)
    clients = [connect(relay) for _ in range(CONNECTIONS)]
    go = threading.Barrier(CONNECTIONS + 1)

    def send(number: int) -> None:
        go.wait()
        address = f"guest{number}@example.com"
        clients[number].sendmail("bench@example.com", [address], raw(address))

    threads = [threading.Thread(target=send, args=(n,)) for n in range(CONNECTIONS)]
    for thread in threads:
        thread.start()
    go.wait()
    started = time.monotonic()
    for thread in threads:
        thread.join(10)
    side_by_side = time.monotonic() - started
    # One after another: CONNECTIONS * DELAY (1.8 s); side by side: one delay plus the work.
    assert DELAY <= side_by_side < CONNECTIONS * DELAY / 2
    assert relay.stats()["messages"] == CONNECTIONS
    assert relay.stats()["most_connections"] == CONNECTIONS  # the control reads not counted

    started = time.monotonic()
    for number in range(3):
        address = f"again{number}@example.com"
        clients[0].sendmail("bench@example.com", [address], raw(address))
    assert time.monotonic() - started >= 3 * DELAY


def test_dot_stuffed_data_arrives_whole(start_relay) -> None:
    relay = start_relay(1)
    body = b".\r\n..\r\n.leading dot\r\n\r\n.\r\nlast line\r\n"
    message = raw("guest@example.com", body=body)
    with connect(relay) as client:
        client.sendmail("bench@example.com", ["guest@example.com"], message)  # stuffs the dots
        client.sendmail("bench@example.com", ["next@example.com"], raw("next@example.com"))
    stats = relay.stats()
    assert stats["messages"] == 2
    # The first message as written: its lone-dot lines did not end it early, its dots unstuffed.
    assert stats["bytes"] == len(message) + len(raw("next@example.com"))
    assert relay.verify({"guest@example.com", "next@example.com"}) == ""


def test_gpmas_smtp_adapter_pipelines_its_messages_to_it(start_relay) -> None:
    relay = start_relay(1)
    config = ProviderConfig(
        name="relay",
        kind="smtp",
        host="127.0.0.1",
        port=relay.port,
        secrets={"USERNAME": USER, "PASSWORD": PASSWORD},
    )
    adapter = SmtpAdapter(config)
    try:
        for job in (41, 42):
            adapter.send(
                OutgoingMessage(
                    to_email=f"guest{job}@example.com",
                    from_email="GPMAS <bench@example.com>",
                    subject="Invitation",
                    text_body="You are invited.\n.\nA line that is a dot, above.",
                    html_body="<p>You are invited.</p>",
                    headers={JOB_HEADER: str(job)},
                )
            )
        assert adapter.connection.has_extn("pipelining")
    finally:
        adapter.close()
    stats = relay.stats()
    assert (stats["messages"], stats["jobs"], stats["distinct_jobs"]) == (2, 2, 2)
    assert relay.verify({"guest41@example.com", "guest42@example.com"}) == ""


def test_verify_tells_every_wrong_delivery_from_a_sent_one(start_relay) -> None:
    relay = start_relay(1)
    with connect(relay) as client:
        for _ in range(2):  # twice to the same guest
            client.sendmail("bench@example.com", ["twice@example.com"], raw("twice@example.com"))
        # to a guest, with another guest's message
        client.sendmail("bench@example.com", ["ok@example.com"], raw("x", to_header="other@x.org"))
        client.sendmail("bench@example.com", ["stranger@example.com"], raw("stranger@example.com"))
    problems = relay.verify({"twice@example.com", "ok@example.com", "lost@example.com"})
    assert problems == (
        "1 recipients got nothing; 1 recipients got more than one; 1 unexpected recipients; "
        "1 messages not addressed to their recipient"
    )
    relay.reset()
    assert relay.stats()["messages"] == 0
    assert relay.verify(set()) == ""


def test_a_wrong_password_is_refused(start_relay) -> None:
    relay = start_relay(1)
    with (
        smtplib.SMTP("127.0.0.1", relay.port, timeout=5) as client,
        pytest.raises(smtplib.SMTPAuthenticationError),
    ):
        client.login(USER, "wrong")
