"""Per-provider fault injection: what a fault is, where it is kept, and what it does to a call.

Semantics (the same for every emulator):

- ``outage``: the connection is closed at once without any answer (SMTP: 421 on connect).
- ``latency_ms``: a delay before anything else happens.
- ``hang``: no answer until ``hang_seconds`` have elapsed; then the request is handled *normally*
  (it may be accepted). That is what a real provider that stalls does: the client times out
  and cannot know whether the message went out, which is exactly the duplicate the chaos tests
  count. ``hang`` plus ``status`` hangs and then fails, so nothing is delivered. Stopping the
  sandbox aborts a hang without an answer.
- ``error_rate > 0``: that fraction of calls, at random, fails with ``status`` (or the
  provider's default: HTTP 500, SMTP 451).
- ``error_rate == 0`` with ``status`` or ``code`` set: every call fails with it.
- ``retry_after``: sent along with a 429.
- ``webhook``: what happens to the delivery events the emulator then posts to the site
  (``sandbox.webhooks``): ``duplicate`` posts each event twice (same event id, as a provider's
  redelivery), ``stale`` signs it with a timestamp two hours old (a replayed capture),
  ``bad_signature`` signs it with a key the site does not know. The call itself is unaffected.
"""

from __future__ import annotations

import math
import random
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

PROVIDERS: tuple[str, ...] = ("sendgrid", "mailgun", "ses", "smtp")

_CODE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.:-]{0,99}$")
_MAX_LATENCY_MS = 600_000
_MAX_HANG_SECONDS = 600.0
_MAX_RETRY_AFTER = 86_400
WEBHOOK_FAULTS: tuple[str, ...] = ("duplicate", "stale", "bad_signature")


def check_provider(provider: str) -> str:
    """A provider kind, or ``<kind>:<scope>`` for a fault that holds for one scope of it (a
    Mailgun sending domain)."""
    if provider.partition(":")[0] not in PROVIDERS:
        raise ValueError(f"unknown provider {provider!r}; expected one of {', '.join(PROVIDERS)}")
    return provider


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_NUMERIC_TEXT_FIELDS = (
    ("status", int),
    ("error_rate", float),
    ("latency_ms", int),
    ("hang_seconds", float),
    ("retry_after", int),
)


@dataclass(frozen=True)
class Fault:
    status: int | None = None
    code: str | None = None
    error_rate: float = 0.0
    latency_ms: int = 0
    hang: bool = False
    hang_seconds: float = 30.0
    outage: bool = False
    retry_after: int | None = None
    webhook: str | None = None

    def __post_init__(self) -> None:
        if self.status is not None and (
            not isinstance(self.status, int)
            or isinstance(self.status, bool)
            or not 400 <= self.status <= 599
        ):
            raise ValueError("status must be an integer between 400 and 599")
        if self.code is not None and (
            not isinstance(self.code, str) or not _CODE_RE.match(self.code)
        ):
            raise ValueError("code must be a short identifier such as 'Throttling'")
        if (
            not _is_number(self.error_rate)
            or math.isnan(self.error_rate)
            or not 0.0 <= self.error_rate <= 1.0
        ):
            raise ValueError("error_rate must be a number between 0 and 1")
        if (
            not isinstance(self.latency_ms, int)
            or isinstance(self.latency_ms, bool)
            or not 0 <= self.latency_ms <= _MAX_LATENCY_MS
        ):
            raise ValueError(f"latency_ms must be an integer between 0 and {_MAX_LATENCY_MS}")
        if not isinstance(self.hang, bool):
            raise ValueError("hang must be true or false")
        if (
            not _is_number(self.hang_seconds)
            or math.isnan(self.hang_seconds)
            or not 0 < self.hang_seconds <= _MAX_HANG_SECONDS
        ):
            raise ValueError(f"hang_seconds must be a number in (0, {_MAX_HANG_SECONDS:g}]")
        if not isinstance(self.outage, bool):
            raise ValueError("outage must be true or false")
        if self.retry_after is not None and (
            not isinstance(self.retry_after, int)
            or isinstance(self.retry_after, bool)
            or not 0 <= self.retry_after <= _MAX_RETRY_AFTER
        ):
            raise ValueError(f"retry_after must be an integer between 0 and {_MAX_RETRY_AFTER}")
        if self.webhook is not None and self.webhook not in WEBHOOK_FAULTS:
            raise ValueError(f"webhook must be one of {', '.join(WEBHOOK_FAULTS)}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fault:
        """Build a fault from untrusted JSON; ValueError names the offending key."""
        if not isinstance(data, Mapping):
            raise ValueError("a fault must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"unknown fault field(s): {', '.join(map(str, unknown))}; "
                f"known: {', '.join(sorted(known))}"
            )
        values = dict(data)
        # JSON has one number type: accept 1.0 for an int field, 1 for a float field.
        for name in ("status", "latency_ms", "retry_after"):
            value = values.get(name)
            if isinstance(value, float) and value.is_integer():
                values[name] = int(value)
        return cls(**values)

    @classmethod
    def from_text(cls, text: Mapping[str, str | None], *, hang: bool, outage: bool) -> Fault:
        """Build a fault from text fields (a form, command-line flags); blank ones are unset.

        ValueError names the offending field.
        """
        values: dict[str, Any] = {"hang": hang, "outage": outage}
        for name, convert in _NUMERIC_TEXT_FIELDS:
            raw = (text.get(name) or "").strip()
            if raw:
                try:
                    values[name] = convert(raw)
                except ValueError:
                    raise ValueError(f"{name} must be a number, not {raw!r}") from None
        for name in ("code", "webhook"):
            value = (text.get(name) or "").strip()
            if value:
                values[name] = value
        return cls.from_dict(values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def fails_always(self) -> bool:
        return self.error_rate == 0 and (self.status is not None or self.code is not None)


@dataclass(frozen=True)
class Verdict:
    """What an emulator must do with one call, decided once at the start of the call."""

    outage: bool = False
    delay: float = 0.0
    hang: float = 0.0
    status: int | None = None
    code: str | None = None
    retry_after: int | None = None

    @property
    def fails(self) -> bool:
        return self.status is not None


PASS = Verdict()


def decide(
    fault: Fault | None,
    *,
    default_status: int,
    status_for_code: Callable[[str], int | None] | None = None,
    rand: Callable[[], float] = random.random,
) -> Verdict:
    if fault is None:
        return PASS
    if fault.outage:
        return Verdict(outage=True)
    fails = fault.fails_always or (fault.error_rate > 0 and rand() < fault.error_rate)
    status: int | None = None
    if fails:
        status = fault.status
        if status is None and fault.code is not None and status_for_code is not None:
            status = status_for_code(fault.code)
        if status is None:
            status = default_status
    return Verdict(
        delay=fault.latency_ms / 1000.0,
        hang=fault.hang_seconds if fault.hang else 0.0,
        status=status,
        code=fault.code if fails else None,
        retry_after=fault.retry_after if fails else None,
    )


class FaultBook:
    """The current fault of each provider; read by emulator threads, written by anyone."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: dict[str, Fault] = {}

    def set(self, provider: str, fault: Fault) -> None:
        check_provider(provider)
        if not isinstance(fault, Fault):
            raise TypeError("fault must be a Fault")
        with self._lock:
            self._faults[provider] = fault

    def get(self, provider: str) -> Fault | None:
        with self._lock:
            return self._faults.get(provider)

    def clear(self, provider: str | None = None) -> None:
        with self._lock:
            if provider is None:
                self._faults.clear()
            else:
                check_provider(provider)
                self._faults.pop(provider, None)

    def all(self) -> dict[str, Fault]:
        with self._lock:
            return dict(self._faults)
