"""Local emulators of the email providers (SendGrid, Mailgun, SES via moto, SMTP).

The real SDKs are pointed at them; each captures what it accepted into an ``Inbox`` and takes
per-provider ``Fault``s. Pure Python (no Django), so tests can run a ``Sandbox`` in threads of
their own process; ``manage.py sandbox`` runs one in the foreground. See docs/sandbox.md.

A development and test tool, not part of the product: a Django app (for ``manage.py sandbox``)
only where its optional dependencies (moto, aiosmtpd) are installed. Importing this package is
cheap: the names below are imported from their modules on first use, so that Django loading the
app does not load moto.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox.client import SandboxClient, SandboxError
    from sandbox.faults import PROVIDERS, Fault, FaultBook
    from sandbox.inbox import CapturedMessage, Inbox
    from sandbox.server import PortInUseError, Sandbox

_EXPORTS = {
    "SandboxClient": "sandbox.client",
    "SandboxError": "sandbox.client",
    "PROVIDERS": "sandbox.faults",
    "Fault": "sandbox.faults",
    "FaultBook": "sandbox.faults",
    "CapturedMessage": "sandbox.inbox",
    "Inbox": "sandbox.inbox",
    "PortInUseError": "sandbox.server",
    "Sandbox": "sandbox.server",
}

__all__ = [
    "PROVIDERS",
    "CapturedMessage",
    "Fault",
    "FaultBook",
    "Inbox",
    "PortInUseError",
    "Sandbox",
    "SandboxClient",
    "SandboxError",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sandbox' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
