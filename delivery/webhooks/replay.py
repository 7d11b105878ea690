"""Replay protection anymail does not do: a signed timestamp older (or further ahead) than the
provider's window is refused. SendGrid signs the timestamp header with the body and Mailgun
signs ``timestamp + token`` (window ``GPMAS_WEBHOOK_MAX_AGE_SECONDS``); SNS signs the message's
``Timestamp``, the time SES published it, which SNS's retries keep for up to an hour (window
``GPMAS_SNS_MAX_AGE_SECONDS``). These checks run before the signature checks, and a timestamp is
only trusted once its signature has passed too (a request must pass both)."""

from __future__ import annotations

import datetime as dt
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


def sns_timestamp(request: HttpRequest) -> str:
    """The SNS message's ``Timestamp`` (ISO 8601: ``2026-12-02T01:00:02.000Z``) in epoch seconds."""
    try:
        stamp = json.loads(request.body)["Timestamp"]
        return str(dt.datetime.fromisoformat(stamp).timestamp())
    except (ValueError, KeyError, TypeError, OverflowError):
        return ""


SIGNED_TIMESTAMP = {"sendgrid": sendgrid_timestamp, "mailgun": mailgun_timestamp}
SIGNED_TIMESTAMP["ses"] = sns_timestamp


def max_age(kind: str) -> int:
    if kind == "ses":
        return settings.GPMAS_SNS_MAX_AGE_SECONDS
    return settings.GPMAS_WEBHOOK_MAX_AGE_SECONDS


def check_fresh(kind: str, request: HttpRequest, *, now: float | None = None) -> None:
    """Raise ``Stale`` unless the provider's signed timestamp is within its window."""
    value = SIGNED_TIMESTAMP[kind](request).strip()
    try:
        stamp = float(value)
    except ValueError:
        raise Stale("no signed timestamp") from None
    now = time.time() if now is None else now
    if not abs(now - stamp) <= max_age(kind):  # "not <=": a NaN is outside too
        raise Stale(f"signed timestamp {value} is outside the replay window")
