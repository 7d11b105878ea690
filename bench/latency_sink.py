"""The SMTP latency world's relay (bench/latency.py): a minimal SMTP responder that answers every
message's ``DATA`` a fixed delay after its last byte, as a real relay's 50 ms, without holding up
any other connection, and at a small CPU cost per message.

Why not the sandbox's sink: it parses every message (aiosmtpd, then MIME) at about 10 ms of CPU a
message on the 2-core machine, so at 16 connections it is the ceiling, not the senders. Why not
Postfix's ``smtp-sink``: its ``-w`` delay is whole seconds. A delaying proxy in front of it would
have to find the end of each message's data to hold its reply, the same parsing as answering it.

What it does per message: split commands on CRLF, find the data's end (``CRLF.CRLF``), undo the
dot-stuffing, and count: each recipient's messages, each ``X-GPMAS-Job`` value's, and messages
whose headers do not name the recipient they were sent to. No MIME parsing. So the benchmark can
tell a lost or doubled message from a sent one (``LatencySink.verify``).

Runs in its own process (``python -m bench.latency_sink --port P --delay-ms 50``), so its CPU is
its own (``LatencySink.cpu_seconds``). Control commands on the same port, one JSON line each:
``XSTATS`` (the counts), ``XRCPTS`` (messages per recipient), ``XRESET``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import socket
import sys
import time
from collections import Counter
from pathlib import Path

JOB = re.compile(rb"^x-gpmas-job:[ \t]*(\S+)", re.IGNORECASE | re.MULTILINE)
ANGLE = re.compile(rb"<([^>]*)>")


class Book:
    """What the relay accepted since the last reset."""

    def __init__(self) -> None:
        self.open = 0  # sending connections open now
        self.reset()

    def opened(self) -> None:
        self.open += 1
        self.most_open = max(self.most_open, self.open)

    def reset(self) -> None:
        self.most_open = self.open  # the most sending connections open at once since the reset
        self.messages = self.bytes = 0
        self.recipients: Counter[str] = Counter()
        self.jobs: Counter[bytes] = Counter()
        self.not_addressed = 0  # accepted for a recipient its own headers do not name
        self.first_accepted = self.last_accepted = 0.0

    def accept(self, rcpts: list[bytes], content: bytes) -> None:
        end = content.find(b"\r\n\r\n")
        head = (content if end < 0 else content[:end]).lower()
        job = JOB.search(head)
        if job:
            self.jobs[job[1]] += 1
        for rcpt in rcpts:
            self.recipients[rcpt.decode("utf-8", "replace").lower()] += 1
            if rcpt.lower() not in head:
                self.not_addressed += 1
        self.messages += 1
        self.bytes += len(content)
        self.last_accepted = time.time()
        self.first_accepted = self.first_accepted or self.last_accepted

    def stats(self) -> dict:
        return {
            "messages": self.messages,
            "bytes": self.bytes,
            "recipients": sum(self.recipients.values()),
            "distinct_recipients": len(self.recipients),
            "jobs": sum(self.jobs.values()),
            "distinct_jobs": len(self.jobs),
            "not_addressed": self.not_addressed,
            "most_connections": self.most_open,
            "first_accepted": self.first_accepted,
            "last_accepted": self.last_accepted,
        }


EHLO = (
    b"250-latency-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SIZE 52428800\r\n"
    b"250 AUTH PLAIN LOGIN\r\n"
)


class Session(asyncio.Protocol):
    """One client connection. Replies leave in command order: while a message's delayed 250 is
    pending, what the client sent after it waits in the buffer (RFC 2920 makes the end of data
    a point where a pipelining client waits for the reply anyway)."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.buffer = b""
        self.in_data = False
        self.scanned = 0  # how far the data's end was looked for already
        self.waiting = False  # a delayed reply is pending
        self.auth: bytes | None = None  # the AUTH step awaiting its next line
        self.login_user = b""
        self.sending = False  # counted among the open connections from its first MAIL on
        self.mail_from: bytes | None = None
        self.rcpts: list[bytes] = []

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(b"220 latency-sink ESMTP\r\n")

    def connection_lost(self, exc) -> None:
        if self.sending:
            self.relay.book.open -= 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.waiting:
            self.work()

    def work(self) -> None:
        out = []
        while not self.waiting:
            if self.in_data:
                if not self.take_data():
                    break
                continue
            end = self.buffer.find(b"\r\n")
            if end < 0:
                break
            line, self.buffer = self.buffer[:end], self.buffer[end + 2 :]
            reply = self.command(line)
            if reply is None:  # QUIT
                self.transport.write(b"".join(out) + b"221 2.0.0 Bye\r\n")
                self.transport.close()
                return
            out.append(reply)
        if out:
            self.transport.write(b"".join(out))

    def take_data(self) -> bool:
        """The message's data if it is all here: accept it after the delay, True; else False."""
        if self.buffer.startswith(b".\r\n"):
            end, content = 0, b""
        else:
            end = self.buffer.find(b"\r\n.\r\n", max(self.scanned - 4, 0))
            if end < 0:
                self.scanned = len(self.buffer)
                return False
            end += 2
            content = self.buffer[:end]
        self.buffer, self.scanned, self.in_data = self.buffer[end + 3 :], 0, False
        content = content.replace(b"\r\n..", b"\r\n.")  # dot-stuffing undone (RFC 5321 4.5.2)
        if content.startswith(b".."):
            content = content[1:]
        rcpts, self.mail_from, self.rcpts = self.rcpts, None, []
        self.waiting = True
        self.relay.loop.call_later(self.relay.delay, self.accepted, rcpts, content)
        return True

    def accepted(self, rcpts: list[bytes], content: bytes) -> None:
        if self.transport.is_closing():
            return  # the client gave up first: like a relay that never answered, no message
        self.relay.book.accept(rcpts, content)
        self.transport.write(b"250 2.0.0 Ok: queued\r\n")
        self.waiting = False
        self.work()

    def command(self, line: bytes) -> bytes | None:
        if self.auth is not None:
            return self.auth_step(line)
        verb = line[:4].upper()
        if verb == b"MAIL":
            if not self.sending:  # a sender's connection, not a control one
                self.sending = True
                self.relay.book.opened()
            self.mail_from, self.rcpts = self.address(line), []
            return b"250 2.1.0 Ok\r\n"
        if verb == b"RCPT":
            if self.mail_from is None:
                return b"503 5.5.1 MAIL first\r\n"
            self.rcpts.append(self.address(line))
            return b"250 2.1.5 Ok\r\n"
        if verb == b"DATA":
            if not self.rcpts:
                return b"503 5.5.1 RCPT first\r\n"
            self.in_data = True
            return b"354 End data with <CR><LF>.<CR><LF>\r\n"
        if verb == b"EHLO":
            return EHLO
        if verb in (b"HELO", b"NOOP"):
            return b"250 Ok\r\n"
        if verb == b"RSET":
            self.mail_from, self.rcpts = None, []
            return b"250 2.0.0 Ok\r\n"
        if verb == b"AUTH":
            return self.auth_start(line)
        if verb == b"QUIT":
            return None
        if verb == b"XSTA":
            return b"250 " + json.dumps(self.relay.book.stats()).encode() + b"\r\n"
        if verb == b"XRCP":
            return b"250 " + json.dumps(self.relay.book.recipients).encode() + b"\r\n"
        if verb == b"XRES":
            self.relay.book.reset()
            return b"250 Ok\r\n"
        return b"500 5.5.2 Unknown command\r\n"

    @staticmethod
    def address(line: bytes) -> bytes:
        found = ANGLE.search(line)
        return found[1] if found else line.split(b":", 1)[-1].strip()

    # AUTH PLAIN (with or without its initial response) and AUTH LOGIN, checked against the
    # relay's credentials, as the providers' relays check them.
    def auth_start(self, line: bytes) -> bytes:
        parts = line.split()
        mechanism = parts[1].upper() if len(parts) > 1 else b""
        if mechanism == b"PLAIN":
            if len(parts) > 2:
                return self.auth_plain(parts[2])
            self.auth = b"plain"
            return b"334 \r\n"
        if mechanism == b"LOGIN":
            self.auth = b"user"
            return b"334 VXNlcm5hbWU6\r\n"
        return b"504 5.5.4 Unrecognized authentication type\r\n"

    def auth_step(self, line: bytes) -> bytes:
        step, self.auth = self.auth, None
        if step == b"plain":
            return self.auth_plain(line)
        if step == b"user":
            self.auth, self.login_user = b"password", _decode(line)
            return b"334 UGFzc3dvcmQ6\r\n"
        return self.relay.authenticate(self.login_user, _decode(line))

    def auth_plain(self, encoded: bytes) -> bytes:
        parts = _decode(encoded).split(b"\0")
        if len(parts) != 3:
            return b"501 5.5.2 Malformed AUTH PLAIN\r\n"
        return self.relay.authenticate(parts[1], parts[2])


def _decode(encoded: bytes) -> bytes:
    try:
        return base64.b64decode(encoded.strip(), validate=True)
    except ValueError:
        return b""


class Relay:
    def __init__(self, delay: float, username: str, password: str) -> None:
        self.delay = delay
        self.credentials = (username.encode(), password.encode())
        self.book = Book()
        self.loop = asyncio.get_running_loop()

    def authenticate(self, username: bytes, password: bytes) -> bytes:
        if (username, password) == self.credentials:
            return b"235 2.7.0 Authentication successful\r\n"
        return b"535 5.7.8 Authentication credentials invalid\r\n"


async def listen(port: int, delay_ms: float, username: str, password: str) -> asyncio.Server:
    relay = Relay(delay_ms / 1000, username, password)
    return await asyncio.get_running_loop().create_server(
        lambda: Session(relay), "127.0.0.1", port, backlog=1024
    )


async def serve(port: int, delay_ms: float, username: str, password: str) -> None:
    server = await listen(port, delay_ms, username, password)
    print(f"latency sink on 127.0.0.1:{port}, {delay_ms} ms a message", flush=True)
    async with server:
        await server.serve_forever()


# --- the benchmark's side ----------------------------------------------------------------
class RelayControl:
    """The relay's counts, read and reset over its control commands."""

    def __init__(self, port: int) -> None:
        self.port = port

    def _ask(self, verb: str):
        with socket.create_connection(("127.0.0.1", self.port), 10) as sock:
            lines = sock.makefile("rb")
            lines.readline()  # the greeting
            sock.sendall(verb.encode() + b"\r\nQUIT\r\n")
            reply = lines.readline()
        if not reply.startswith(b"250 "):
            raise RuntimeError(f"latency sink: {verb} answered {reply[:200]!r}")
        return json.loads(reply[4:]) if reply[4:5] in (b"{", b"[") else None

    def reset(self) -> None:
        self._ask("XRESET")

    def stats(self) -> dict:
        return self._ask("XSTATS")

    def recipients(self) -> dict[str, int]:
        return self._ask("XRCPTS")

    def verify(self, expected: set[str]) -> str:
        """'' if each expected address got exactly one message, each addressed to it, and no
        other address got any; else what went wrong."""
        got = self.recipients()
        stats = self.stats()
        problems = []
        missing = expected - got.keys()
        doubled = [a for a, n in got.items() if n > 1]
        strangers = got.keys() - expected
        if missing:
            problems.append(f"{len(missing)} recipients got nothing")
        if doubled:
            problems.append(f"{len(doubled)} recipients got more than one")
        if strangers:
            problems.append(f"{len(strangers)} unexpected recipients")
        if stats["not_addressed"]:
            problems.append(f"{stats['not_addressed']} messages not addressed to their recipient")
        if stats["jobs"] != stats["distinct_jobs"]:
            problems.append(f"{stats['jobs'] - stats['distinct_jobs']} job ids seen twice")
        return "; ".join(problems)


class LatencySink(RelayControl):
    """The relay in a process of its own, on a free port."""

    def __init__(self, delay_ms: float, username: str, password: str) -> None:
        from bench.processes import Process
        from bench.stack import free_port, wait_until

        super().__init__(free_port())
        self.delay_ms = delay_ms
        command = [sys.executable, "-m", "bench.latency_sink", "--port", str(self.port)]
        command += ["--delay-ms", str(delay_ms), "--username", username, "--password", password]
        self.process = Process("latency-sink", command)
        wait_until(self._answering, timeout=20, what="the latency sink")

    def _answering(self) -> bool:
        self.process.check_alive()
        try:
            socket.create_connection(("127.0.0.1", self.port), 1).close()
        except OSError:
            return False
        return True

    def cpu_seconds(self) -> float:
        """The relay process's CPU time so far (user + system)."""
        fields = Path(f"/proc/{self.process.popen.pid}/stat").read_text().rsplit(")", 1)[1]
        user, system = fields.split()[11:13]
        return (int(user) + int(system)) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=50)
    parser.add_argument("--username", default="sandbox")
    parser.add_argument("--password", default="sandbox-secret")
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.delay_ms, args.username, args.password))


if __name__ == "__main__":
    main()
