"""Replay protection anymail does not do: a signed timestamp older (or further ahead) than
``GPMAS_WEBHOOK_MAX_AGE_SECONDS`` is refused. SendGrid signs the timestamp header with the body;
Mailgun signs ``timestamp + token``; both checks run before anymail's signature check, and a
timestamp is only trusted once that check has passed too (a request must pass both)."""

from __future__ import annotations

import json
import time

from django.conf import settings
from django.http import HttpRequest

SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"


class Stale(Exception):
    """The request's signed timestamp is missing, malformed or outside the window."""


def sendgrid_timestamp(request: HttpRequest) -> str:
    return request.headers.get(SENDGRID_TIMESTAMP, "")


def mailgun_timestamp(request: HttpRequest) -> str:
    """From the JSON body (``signature.timestamp``) or a legacy form post (``timestamp``)."""
    if request.content_type == "application/json":
        try:
            body = json.loads(request.body)
            return str(body["signature"]["timestamp"])
        except (ValueError, KeyError, TypeError):
            return ""
    return request.POST.get("timestamp", "")


SIGNED_TIMESTAMP = {"sendgrid": sendgrid_timestamp, "mailgun": mailgun_timestamp}


def check_fresh(kind: str, request: HttpRequest, *, now: float | None = None) -> None:
    """Raise ``Stale`` unless the provider's signed timestamp is within the window; providers
    that sign no timestamp pass."""
    read = SIGNED_TIMESTAMP.get(kind)
    if read is None:
        return
    value = read(request).strip()
    try:
        stamp = float(value)
    except ValueError:
        raise Stale("no signed timestamp") from None
    now = time.time() if now is None else now
    if abs(now - stamp) > settings.GPMAS_WEBHOOK_MAX_AGE_SECONDS:
        raise Stale(f"signed timestamp {value} is outside the replay window")
