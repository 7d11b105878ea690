"""The small request/response types the HTTP emulators and pages are written against."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from email.message import Message
from typing import Any
from urllib.parse import parse_qs


@dataclass
class Request:
    method: str
    target: str  # path and query, as received
    path: str
    query: dict[str, list[str]]
    headers: Message  # case-insensitive, as http.server parses them
    body: bytes

    @classmethod
    def build(cls, method: str, target: str, headers: Message, body: bytes) -> Request:
        path, _, query = target.partition("?")
        return cls(method, target, path, parse_qs(query, keep_blank_values=True), headers, body)

    def header(self, name: str, default: str = "") -> str:
        value = self.headers.get(name)
        return default if value is None else str(value)

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(cls, status: int, data: Any, headers: list[tuple[str, str]] | None = None) -> Response:
        body = json.dumps(data, separators=(",", ":")).encode("utf-8")
        return cls(status, body, [("Content-Type", "application/json"), *(headers or [])])

    @classmethod
    def text(cls, status: int, text: str, content_type: str = "text/plain") -> Response:
        return cls(
            status, text.encode("utf-8"), [("Content-Type", f"{content_type}; charset=utf-8")]
        )

    @classmethod
    def redirect(cls, location: str) -> Response:
        return cls(303, b"", [("Location", location)])


class Abort(Exception):
    """Close the connection without any answer (an outage, or the sandbox stopping)."""
