"""Replay protection anymail does not do: a signed timestamp older (or further ahead) than the
provider's window is refused. SendGrid signs the timestamp header with the body and Mailgun
signs ``timestamp + token`` (window ``GPMAS_WEBHOOK_MAX_AGE_SECONDS``); SNS signs the message's
``Timestamp``, the time SES published it, which SNS's retries keep for up to an hour (window
``GPMAS_SNS_MAX_AGE_SECONDS``). These checks run before the signature checks, and a timestamp is
only trusted once its signature has passed too (a request must pass both). Mailgun's signature
does not cover the event, so its tokens are remembered too (``check_token``)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"


class Stale(Exception):
    """The request's signed timestamp is missing, malformed or outside the window."""


class Reused(Exception):
    """A signed token already seen with another event: a captured signature replayed."""


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


def check_token(kind: str, request: HttpRequest) -> None:
    """Raise ``Reused`` if this Mailgun post's signed token came before with another event.

    Mailgun's HMAC covers ``timestamp + token`` only, so a captured signature could carry any
    event inside the window. Each token is kept (in the cache, with the event id first seen with
    it) for as long as its timestamp can be accepted. Mailgun's retry of the same post (same
    token, same event) passes: the event log makes it change nothing, and a refusal would make
    Mailgun retry for hours. Run once anymail has verified the signature, so only genuine tokens
    are kept. Legacy form posts are left out: anymail takes their token as the event id, so a
    replay of one is a redelivery already."""
    if kind != "mailgun" or request.content_type != "application/json":
        return
    body = json.loads(request.body)
    data = body.get("event-data")
    event_id = str(data.get("id", "")) if isinstance(data, dict) else ""
    token = str(body["signature"]["token"])
    key = "webhook-token:mailgun:" + hashlib.sha256(token.encode()).hexdigest()
    # a timestamp is taken from max_age before now to max_age ahead: 2 * max_age in all
    if cache.add(key, event_id, timeout=2 * max_age(kind)):
        return
    seen = cache.get(key)
    if seen is not None and seen != event_id:
        raise Reused(f"signature token already used for event {seen[:100]!r}")
