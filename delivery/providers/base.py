"""The one small interface every provider adapter implements (docs/providers.md).

An adapter turns its SDK's successes into a provider message id and its failures into one
``SendError`` carrying an ``ErrorClass``; nothing outside the adapter knows an SDK.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Hashable
from dataclasses import dataclass, field

from delivery.message import OutgoingMessage


class ErrorClass(enum.StrEnum):
    TRANSIENT = "transient"  # timeouts before sending, connection errors, 5xx: try elsewhere
    RATE_LIMITED = "rate_limited"  # 429, throttling: try elsewhere, skip this one for a while
    PROVIDER_ERROR = "provider_error"  # bad key, account paused: this provider is broken
    RECIPIENT_REJECTED = "recipient_rejected"  # this message can never be sent: fail the job
    UNKNOWN = "unknown"  # no answer after the request went out: it may have been accepted


class SendError(Exception):
    def __init__(
        self,
        error_class: ErrorClass,
        message: str,
        *,
        code: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.code = code
        self.retry_after = retry_after


# What ``send_batch`` returns: the call's one id when the provider took every message, or, from
# a provider that answers message by message (SES SendBulkEmail), one item per message in order:
# its own id, or the SendError that refused that message alone.
BatchAnswer = str | list[str | SendError]


class ProviderConfigError(Exception):
    """The provider row cannot be used as configured (unknown kind, missing secret)."""


@dataclass(frozen=True)
class ProviderConfig:
    """What an adapter needs to know: the provider row's non-secret settings plus its secrets."""

    name: str
    kind: str
    api_base_url: str = ""
    region: str = ""
    domain: str = ""
    host: str = ""
    port: int | None = None
    use_tls: bool = False
    connect_timeout: float = 5.0
    read_timeout: float = 20.0
    secrets: dict[str, str] = field(default_factory=dict, repr=False)


def secret_variable(provider_name: str, secret: str) -> str:
    return f"GPMAS_PROVIDER_{provider_name.upper().replace('-', '_')}_{secret}"


def read_secrets(provider_name: str, required: tuple[str, ...], optional: tuple[str, ...] = ()):
    """Secrets come from the environment only, never from the database."""
    secrets, missing = {}, []
    for secret in (*required, *optional):
        value = os.environ.get(secret_variable(provider_name, secret), "")
        if value:
            secrets[secret] = value
        elif secret in required:
            missing.append(secret_variable(provider_name, secret))
    if missing:
        raise ProviderConfigError(
            f"provider {provider_name!r} needs environment variable(s) {', '.join(missing)}"
        )
    return secrets


class Adapter:
    required_secrets: tuple[str, ...] = ()
    optional_secrets: tuple[str, ...] = ()
    # Provider-row fields that must be set, each with the error shown when it is not.
    required_settings: dict[str, str] = {}
    # How many messages one call can carry: above 1 for a provider with a batch API.
    max_batch = 1
    # Whether the messages of one call must go to different addresses (a batch API whose
    # per-recipient values are keyed by address).
    distinct_recipients = False

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config

    def send(self, message: OutgoingMessage) -> str:
        """Hand the message to the provider; return its message id or raise SendError."""
        raise NotImplementedError

    def batch_key(self, message: OutgoingMessage) -> Hashable | None:
        """Messages with the same key can share one ``send_batch`` call; None: send it alone."""
        return None

    def send_batch(self, messages: list[OutgoingMessage]) -> BatchAnswer:
        """Hand several messages over in one call. A call that took none raises SendError; one
        that took some answers per message (``BatchAnswer``)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release connections held between sends."""


def http_error_class(status: int) -> ErrorClass:
    """The common HTTP mapping (docs/providers.md, "The error classes"); adapters override
    provider quirks."""
    if status == 429:
        return ErrorClass.RATE_LIMITED
    if status >= 500:
        return ErrorClass.TRANSIENT
    if status in (401, 403):
        return ErrorClass.PROVIDER_ERROR
    if status in (400, 413):
        return ErrorClass.RECIPIENT_REJECTED
    return ErrorClass.PROVIDER_ERROR
