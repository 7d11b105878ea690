"""The providers' side of the event loop, for a chaos run that measures the wait for events
(README, "Proof of reliability", ``GPMAS_CHAOS_PROVIDER_EVENTS``).

The sandbox emulators do not post webhooks themselves yet. Instead, a thread of the test process
plays their part: ``delay`` seconds after an emulator that has webhooks (SendGrid, Mailgun, SES;
not SMTP) captured a message, it hands a ``delivered`` event for it to
``delivery.webhooks.events.apply_event``, the function the webhook view's ``tracking`` signal
calls once a post is verified, with the normalized event anymail would make: the job's identity
as the provider echoes it (``gpmas_job``), the provider's message id, the recipient. Signatures
and the HTTP round trip are left out: the webhook tests cover them (tests/delivery/webhooks/).
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time

from anymail.signals import AnymailTrackingEvent, EventType
from django.db import connection, transaction
from django.utils import timezone

from delivery.message import JOB_METADATA
from delivery.webhooks.events import apply_event
from sandbox import Sandbox

# Seconds after capture at which the emulated providers report a message; unset: no events
# (the suite's default, as before the wait for events existed).
DELAY = os.environ.get("GPMAS_CHAOS_PROVIDER_EVENTS", "")
# The wait for events the stack's workers use while events are posted (GPMAS_EVENT_WAIT_SECONDS).
# Short, so a job never reported is resent within the scenario and its copies are counted.
WAIT = os.environ.get("GPMAS_CHAOS_EVENT_WAIT_SECONDS", "30")
POSTING = ("sendgrid", "mailgun", "ses")
# Where each scenario's event lags go, one JSON line per scenario (bench/event_wait_chaos.py).
LAG_REPORT = os.environ.get("GPMAS_CHAOS_EVENTS_REPORT", "")


def stack_env() -> dict[str, str]:
    """What the stack's processes need to count SendGrid, Mailgun and SES as posting events."""
    if not DELAY:
        return {}
    return {
        "GPMAS_EVENT_WAIT_SECONDS": WAIT,
        "GPMAS_WEBHOOK_SECRETS": "chaos:events",
        "GPMAS_SENDGRID_WEBHOOK_VERIFICATION_KEY": "chaos",
        "GPMAS_MAILGUN_WEBHOOK_SIGNING_KEY": "chaos",
        "GPMAS_SES_SNS_TOPIC_ARNS": "arn:aws:sns:us-east-1:000000000000:chaos",
    }


class ProviderEvents:
    """Reports every message the posting emulators accept, ``delay`` seconds after capture."""

    def __init__(self, sandbox: Sandbox, delay: float) -> None:
        self.inbox = sandbox.inbox
        self.delay = delay
        self.reported: set[str] = set()
        self.lags: list[float] = []  # seconds from capture to the event applied
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="provider-events")

    def __enter__(self) -> ProviderEvents:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)
        if LAG_REPORT:
            with open(LAG_REPORT, "a", encoding="utf-8") as out:
                out.write(json.dumps(self.lag_summary()) + "\n")

    def lag_summary(self) -> dict:
        """How late the events really came: the thread falls behind when the machine is busy."""
        lags = sorted(self.lags) or [0.0]
        return {
            "events": len(self.lags),
            "lag_p50": statistics.median(lags),
            "lag_max": lags[-1],
        }

    def _run(self) -> None:
        try:
            while not self._stop.wait(0.2):
                self.report_due(time.time())
        finally:
            connection.close()  # this thread's own database connection

    def report_due(self, now: float) -> None:
        for message in self.inbox.messages():
            due = message.received_at + self.delay <= now
            if due and message.provider in POSTING and message.id not in self.reported:
                self.reported.add(message.id)
                with transaction.atomic():  # as the webhook view does, per request
                    apply_event(message.provider, delivered(message))
                self.lags.append(time.time() - message.received_at)


def delivered(message) -> AnymailTrackingEvent:
    return AnymailTrackingEvent(
        event_type=EventType.DELIVERED,
        event_id=f"chaos-{message.id}",
        message_id=message.provider_message_id,
        recipient=message.to[0] if message.to else "",
        metadata={JOB_METADATA: message.job or ""},
        timestamp=timezone.now(),
        esp_event={"chaos": "delivered", "id": message.id},
    )
