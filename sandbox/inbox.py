"""What the emulators accepted, and how many calls each provider received."""

from __future__ import annotations

import base64
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sandbox.faults import PROVIDERS

Attachment = tuple[str, str, str | bytes]


def new_message_id() -> str:
    return secrets.token_hex(8)


@dataclass
class CapturedMessage:
    """One delivered copy: one per recipient, as that recipient's mailbox would hold it."""

    provider: str
    to: list[str]
    from_email: str = ""
    subject: str = ""
    text: str = ""
    html: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    attachments: list[Attachment] = field(default_factory=list)
    provider_message_id: str = ""
    raw: str = ""
    # SendGrid custom_args, Mailgun v: variables: what the provider would echo in webhooks.
    metadata: dict[str, str] = field(default_factory=dict)
    id: str = field(default_factory=new_message_id)
    received_at: float = field(default_factory=time.time)

    def header(self, name: str, default: str | None = None) -> str | None:
        """Header value by case-insensitive name."""
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return default

    @property
    def job(self) -> str | None:
        return self.header("X-GPMAS-Job")

    def to_dict(self) -> dict[str, Any]:
        attachments = []
        for filename, content_type, content in self.attachments:
            item: dict[str, Any] = {"filename": filename, "content_type": content_type}
            if isinstance(content, bytes):
                item["base64"] = base64.b64encode(content).decode("ascii")
            else:
                item["text"] = content
            attachments.append(item)
        return {
            "id": self.id,
            "provider": self.provider,
            "received_at": self.received_at,
            "to": list(self.to),
            "from_email": self.from_email,
            "subject": self.subject,
            "text": self.text,
            "html": self.html,
            "headers": dict(self.headers),
            "attachments": attachments,
            "provider_message_id": self.provider_message_id,
            "raw": self.raw,
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CapturedMessage:
        attachments: list[Attachment] = []
        for item in data.get("attachments", []):
            if "base64" in item:
                content: str | bytes = base64.b64decode(item["base64"])
            else:
                content = item.get("text", "")
            attachments.append((item.get("filename", ""), item.get("content_type", ""), content))
        return cls(
            id=data["id"],
            provider=data["provider"],
            received_at=data["received_at"],
            to=list(data.get("to", [])),
            from_email=data.get("from_email", ""),
            subject=data.get("subject", ""),
            text=data.get("text", ""),
            html=data.get("html", ""),
            headers=dict(data.get("headers", {})),
            attachments=attachments,
            provider_message_id=data.get("provider_message_id", ""),
            raw=data.get("raw", ""),
            metadata=dict(data.get("metadata", {})),
        )


def _zero_stats() -> dict[str, int]:
    return {"calls": 0, "accepted": 0, "rejected": 0, "faulted": 0, "messages": 0}


class Inbox:
    """Thread-safe store of captured messages and per-provider call counts.

    Stats count *requests*: ``calls`` (every send request that reached the emulator),
    ``accepted``, ``rejected`` (answered with an error or cut off, for whatever reason),
    ``faulted`` (the part of ``rejected`` caused by an injected fault) and ``messages``
    (copies captured; one request can carry several recipients). Once no call is in flight,
    ``calls == accepted + rejected``.

    ``clear()`` starts a new epoch: a call still in flight from before it (a hang that ends
    later) is neither captured nor counted, so one test's slow call never lands in the next's.
    """

    def __init__(self, max_messages: int = 10_000) -> None:
        self._cond = threading.Condition()
        self._messages: deque[CapturedMessage] = deque(maxlen=max_messages)
        self._stats: dict[str, dict[str, int]] = {p: _zero_stats() for p in PROVIDERS}
        self._epoch = 0
        # Not reset by clear(): a call in flight is in flight whatever the epoch.
        self._in_flight: dict[str, int] = dict.fromkeys(PROVIDERS, 0)
        self._last_accepted: dict[str, float] = {}

    def messages(
        self, provider: str | None = None, *, job: str | None = None
    ) -> list[CapturedMessage]:
        with self._cond:
            found = list(self._messages)
        if provider is not None:
            found = [m for m in found if m.provider == provider]
        if job is not None:
            found = [m for m in found if m.job == job]
        return found

    def get(self, message_id: str) -> CapturedMessage | None:
        with self._cond:
            for message in self._messages:
                if message.id == message_id:
                    return message
        return None

    def stats(self) -> dict[str, dict[str, int]]:
        """Per provider: the counts since the last ``clear()``, plus ``in_flight`` now."""
        with self._cond:
            return {
                provider: {**counts, "in_flight": self._in_flight[provider]}
                for provider, counts in self._stats.items()
            }

    def last_accepted(self) -> dict[str, float]:
        """Per provider, when it last accepted a call since the last ``clear()`` (Unix time):
        what a benchmark stops its clock at, without fetching every message."""
        with self._cond:
            return dict(self._last_accepted)

    def in_flight(self, provider: str | None = None) -> int:
        """Calls received and not answered yet (slowed down or hanging)."""
        with self._cond:
            if provider is not None:
                return self._in_flight[provider]
            return sum(self._in_flight.values())

    def clear(self) -> None:
        with self._cond:
            self._messages.clear()
            self._stats = {p: _zero_stats() for p in PROVIDERS}
            self._last_accepted.clear()
            self._epoch += 1
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[Inbox], bool], timeout: float = 5.0) -> bool:
        """Block until ``predicate(inbox)`` holds (re-checked on every change) or time out."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    # The emulators' side.

    def record_call(self, provider: str) -> int:
        """Count a call; returns the epoch to pass to ``record_accepted``/``record_rejected``."""
        with self._cond:
            self._stats[provider]["calls"] += 1
            self._in_flight[provider] += 1
            self._cond.notify_all()
            return self._epoch

    def record_rejected(
        self, provider: str, *, faulted: bool = False, epoch: int | None = None
    ) -> None:
        with self._cond:
            self._finish(provider)
            if epoch is not None and epoch != self._epoch:
                return
            self._stats[provider]["rejected"] += 1
            if faulted:
                self._stats[provider]["faulted"] += 1
            self._cond.notify_all()

    def record_accepted(
        self, provider: str, messages: Iterable[CapturedMessage], *, epoch: int | None = None
    ) -> None:
        with self._cond:
            self._finish(provider)
            if epoch is not None and epoch != self._epoch:
                return
            added = 0
            for message in messages:
                self._messages.append(message)
                added += 1
            self._stats[provider]["accepted"] += 1
            self._stats[provider]["messages"] += added
            self._last_accepted[provider] = time.time()
            self._cond.notify_all()

    def _finish(self, provider: str) -> None:
        self._in_flight[provider] = max(0, self._in_flight[provider] - 1)
        self._cond.notify_all()
