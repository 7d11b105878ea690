"""Postfix's ``smtp-sink``: an SMTP server in C that accepts and discards mail, tens of thousands
of messages a second, so the fan-out benchmark's SMTP table measures the senders and not the sink
(the sandbox's Python sink tops out at a few hundred messages a second on this machine).

It announces PIPELINING and AUTH but answers AUTH with 250, which smtplib's ``login()`` takes for
a failure: every contestant sends to it without logging in.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from bench.processes import Process
from bench.stack import free_port, wait_until

CANDIDATES = ("smtp-sink", "/usr/sbin/smtp-sink", "/usr/lib/postfix/smtp-sink")
COUNTER = re.compile(rb"mesg=(\d+)")


class SinkUnavailable(Exception):
    """Why the smtp-sink table is skipped (one line)."""


def find_or_install() -> str:
    """The smtp-sink binary; installs Debian's ``postfix`` package when it is missing and this
    process may (root with apt-get), otherwise raises SinkUnavailable saying why."""
    found = _find()
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise SinkUnavailable(
            "Postfix's smtp-sink is not installed (Debian: apt-get install postfix) and this "
            "user cannot install it"
        )
    print("  installing Debian's postfix package for smtp-sink", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    result = subprocess.run(
        ["apt-get", "install", "-y", "-qq", "postfix"], env=env, capture_output=True, text=True
    )
    found = _find()
    if not found:
        last = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise SinkUnavailable(f"installing postfix for smtp-sink failed: {last[0]}")
    return found


def _find() -> str | None:
    for candidate in CANDIDATES:
        path = shutil.which(candidate) or (candidate if Path(candidate).is_file() else None)
        if path and os.access(path, os.X_OK):
            return path
    return None


class PostfixSink:
    """One smtp-sink process on a free local port; ``accepted()`` reads its running counter."""

    def __init__(self, binary: str) -> None:
        self.port = free_port()
        # -c: a running count of accepted messages on stdout; -u: the user to run as when
        # started as root (smtp-sink refuses to run as root otherwise); 1024: listen backlog.
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        self.process = Process("smtp-sink", [binary, *user, "-c", f"127.0.0.1:{self.port}", "1024"])
        wait_until(self._answering, timeout=10, what="smtp-sink")

    def _answering(self) -> bool:
        import socket

        self.process.check_alive()
        try:
            socket.create_connection(("127.0.0.1", self.port), 1).close()
        except OSError:
            return False
        return True

    def accepted(self) -> int:
        counts = COUNTER.findall(self.process.log_path.read_bytes())
        return int(counts[-1]) if counts else 0

    @property
    def pid(self) -> int:
        return self.process.popen.pid

    def stop(self) -> None:
        self.process.stop()
