"""The delivery events a provider would post about one accepted copy, signed as that provider
signs them (docs/sandbox.md, "Delivery events"). Plain data in, ``Post``s out; the thread that
sends them is ``sandbox.webhooks``.

What happens to a copy depends on its address's local part: ``bounce@…`` bounces (hard),
``softbounce@…`` bounces softly, ``complaint@…`` is delivered and then reported as spam (as
real providers do: a complaint comes from a mailbox that got the message), anything else is
delivered. Each event carries back what the provider was given: SendGrid the ``custom_args`` of
the copy's personalization as top-level fields, Mailgun the ``v:`` variables as
``user-variables``, SES (through SNS) the message's headers in ``mail.headers`` and its SES
message id in ``mail.messageId``.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import hmac
import json
import secrets
import uuid
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from sandbox.inbox import CapturedMessage
from sandbox.webhook_keys import SNS_TOPIC_ARN, WebhookKeys

STALE_SECONDS = 7200  # the ``stale`` fault's age: outside every replay window (SNS's is 70 min)
OUTCOMES = {
    "bounce": ("bounce",),
    "softbounce": ("softbounce",),
    "complaint": ("delivered", "complaint"),
}
PATHS = {
    "sendgrid": "/webhooks/sendgrid/tracking/",
    "mailgun": "/webhooks/mailgun/tracking/",
    "ses": "/webhooks/amazon_ses/tracking/",
}


def outcomes(address: str) -> tuple[str, ...]:
    """The events, in order, that the copy to ``address`` produces."""
    return OUTCOMES.get(address.partition("@")[0].lower(), ("delivered",))


@dataclass(frozen=True)
class Post:
    provider: str
    kind: str
    recipient: str
    path: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Signing:
    keys: WebhookKeys
    sns_cert_url: str
    fault: str | None = None  # sandbox.faults.WEBHOOK_FAULTS

    def stamp(self, now: float) -> float:
        return now - STALE_SECONDS if self.fault == "stale" else now


def build(provider: str, message: CapturedMessage, kind: str, signing: Signing, now: float) -> Post:
    builder = {"sendgrid": sendgrid, "mailgun": mailgun, "ses": ses}[provider]
    body, headers = builder(message, kind, signing, signing.stamp(now))
    return Post(provider, kind, message.to[0], PATHS[provider], body, headers)


# --- SendGrid: a JSON array of events, ECDSA P-256 over timestamp + body ----------------------

SENDGRID_EVENT = {
    "delivered": {"event": "delivered", "response": "250 2.0.0 OK"},
    "bounce": {
        "event": "bounce",
        "type": "bounce",
        "status": "5.1.1",
        "reason": "550 5.1.1 The email account that you tried to reach does not exist",
    },
    "softbounce": {
        "event": "bounce",
        "type": "blocked",
        "status": "4.2.2",
        "reason": "452 4.2.2 The email account that you tried to reach is over quota",
    },
    "complaint": {"event": "spamreport"},
}


def sendgrid(message: CapturedMessage, kind: str, signing: Signing, stamp: float):
    event = {
        **message.metadata,  # custom_args come back as top-level fields
        "email": message.to[0],
        "timestamp": int(stamp),
        "sg_event_id": base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="),
        "sg_message_id": f"{message.provider_message_id}.sandbox.{message.id}",
        "smtp-id": f"<{message.provider_message_id}@sandbox>",
        **SENDGRID_EVENT[kind],
    }
    body = json.dumps([event]).encode()
    key = _wrong_ec_key() if signing.fault == "bad_signature" else signing.keys.sendgrid
    timestamp = str(int(stamp))
    signature = key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return body, {
        "Content-Type": "application/json",
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
    }


# --- Mailgun: one event per post, HMAC-SHA256 of timestamp + token --------------------------

MAILGUN_EVENT = {
    "delivered": {"event": "delivered", "delivery-status": {"code": 250, "message": "OK"}},
    "bounce": {
        "event": "failed",
        "severity": "permanent",
        "reason": "bounce",
        "delivery-status": {"code": 550, "message": "5.1.1 No such user", "description": ""},
    },
    "softbounce": {
        "event": "failed",
        "severity": "temporary",
        "reason": "generic",
        "delivery-status": {"code": 452, "message": "4.2.2 Mailbox full", "description": ""},
    },
    "complaint": {"event": "complained"},
}


def mailgun(message: CapturedMessage, kind: str, signing: Signing, stamp: float):
    data = {
        "id": secrets.token_urlsafe(16),
        "timestamp": stamp,
        "recipient": message.to[0],
        "message": {"headers": {"message-id": message.provider_message_id.strip("<>")}},
        "user-variables": dict(message.metadata),
        **MAILGUN_EVENT[kind],
    }
    key = "not-the-signing-key" if signing.fault == "bad_signature" else signing.keys.mailgun
    timestamp, token = str(int(stamp)), secrets.token_hex(25)
    signature = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256)
    body = {
        "signature": {"timestamp": timestamp, "token": token, "signature": signature.hexdigest()},
        "event-data": data,
    }
    return json.dumps(body).encode(), {"Content-Type": "application/json"}


# --- Amazon SES: an SES event inside an SNS notification, RSA-signed by SNS -----------------

SES_TYPE = {"delivered": "Delivery", "bounce": "Bounce", "softbounce": "Bounce"}
SES_TYPE["complaint"] = "Complaint"


def _ses_detail(kind: str, recipient: str, when: str) -> dict:
    if kind == "delivered":
        return {"timestamp": when, "recipients": [recipient], "smtpResponse": "250 2.0.0 OK"}
    if kind == "complaint":
        complained = [{"emailAddress": recipient}]
        return {"timestamp": when, "complainedRecipients": complained, "feedbackId": _id()}
    hard = kind == "bounce"
    bounced = {
        "emailAddress": recipient,
        "action": "failed",
        "status": "5.1.1" if hard else "4.2.2",
        "diagnosticCode": "smtp; 550 5.1.1 user unknown" if hard else "smtp; 452 4.2.2 full",
    }
    return {
        "bounceType": "Permanent" if hard else "Transient",
        "bounceSubType": "General" if hard else "MailboxFull",
        "bouncedRecipients": [bounced],
        "timestamp": when,
        "feedbackId": _id(),
    }


def ses(message: CapturedMessage, kind: str, signing: Signing, stamp: float):
    when = dt.datetime.fromtimestamp(stamp, dt.UTC).isoformat(timespec="milliseconds")[:-6] + "Z"
    event_type = SES_TYPE[kind]
    ses_event = {
        "eventType": event_type,
        "mail": {
            "timestamp": when,
            "messageId": message.provider_message_id,
            "source": message.from_email,
            "destination": list(message.to),
            "headersTruncated": False,
            "headers": [{"name": name, "value": value} for name, value in message.headers.items()],
        },
        event_type.lower(): _ses_detail(kind, message.to[0], when),
    }
    notification = {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": SNS_TOPIC_ARN,
        "Subject": "Amazon SES Email Event Notification",
        "Message": json.dumps(ses_event),
        "Timestamp": when,
        "SignatureVersion": "1",
        "SigningCertURL": signing.sns_cert_url,
    }
    key = _wrong_rsa_key() if signing.fault == "bad_signature" else signing.keys.sns
    notification["Signature"] = sns_signature(notification, key)
    return json.dumps(notification).encode(), {
        "Content-Type": "text/plain; charset=UTF-8",
        "x-amz-sns-message-type": "Notification",
        "x-amz-sns-message-id": notification["MessageId"],
        "x-amz-sns-topic-arn": SNS_TOPIC_ARN,
    }


def sns_signature(notification: dict, key: rsa.RSAPrivateKey) -> str:
    """SignatureVersion 1: RSA PKCS#1 v1.5 with SHA1 over "Key\\nValue\\n" of SNS's keys."""
    keys = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
    text = "".join(f"{k}\n{notification[k]}\n" for k in keys if k in notification).encode()
    return base64.b64encode(key.sign(text, padding.PKCS1v15(), hashes.SHA1())).decode()


def _id() -> str:
    return secrets.token_hex(16)


@functools.cache
def _wrong_ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@functools.cache
def _wrong_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)
