"""Local emulators of the email providers (SendGrid, Mailgun, SES via moto, SMTP).

The real SDKs are pointed at them; each captures what it accepted into an ``Inbox`` and takes
per-provider ``Fault``s. Pure Python (no Django), so tests can run a ``Sandbox`` in threads of
their own process; ``manage.py sandbox`` runs one in the foreground. DESIGN.md §8.
"""

from delivery.sandbox.client import SandboxClient, SandboxError
from delivery.sandbox.faults import PROVIDERS, Fault, FaultBook
from delivery.sandbox.inbox import CapturedMessage, Inbox
from delivery.sandbox.server import PortInUseError, Sandbox

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
