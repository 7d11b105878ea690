"""Signed webhook posts as each provider makes them: SendGrid's Signed Event Webhook (ECDSA
P-256 over timestamp + body), Mailgun's HMAC-SHA256 of timestamp + token, SES through SNS (no
signature is RSA over SNS's canonical string, checked against a certificate made here). Keys
and certificates are made here, per test run."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import time
import uuid

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from sandbox.webhook_keys import certificate

BASIC = ("hooks", "s3cret-one")
OTHER_BASIC = ("hooks", "s3cret-two")  # the rotation's second secret
MAILGUN_KEY = "mailgun-signing-key-for-tests"
SENDGRID_KEY = ec.generate_private_key(ec.SECP256R1())
WRONG_KEY = ec.generate_private_key(ec.SECP256R1())


def public_key_b64(key) -> str:
    """The verification key as SendGrid shows it: base64 DER, no PEM lines."""
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def configure(settings) -> None:
    settings.ANYMAIL = {
        "WEBHOOK_SECRET": [":".join(BASIC), ":".join(OTHER_BASIC)],
        "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_KEY,
        "SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY": public_key_b64(SENDGRID_KEY),
        "AMAZON_SES_AUTO_CONFIRM_SNS_SUBSCRIPTIONS": False,
    }


def auth(pair=BASIC) -> dict[str, str]:
    token = base64.b64encode(":".join(pair).encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {token}"}


# --- SendGrid ------------------------------------------------------------------------------------


def sendgrid_event(job=None, *, event="delivered", email=None, **fields) -> dict:
    body = {
        "email": email or (job.to_email if job else "nobody@example.com"),
        "event": event,
        "timestamp": int(time.time()),
        "sg_event_id": uuid.uuid4().hex,
        "sg_message_id": "sgmsg.filter0001",
        **fields,
    }
    if job is not None:
        body["gpmas_job"] = str(job.pk)  # custom_args come back as top-level fields
    return body


def post_sendgrid(client, events, *, at=None, key=SENDGRID_KEY, tamper=None, auth_pair=BASIC):
    body = events if isinstance(events, bytes) else json.dumps(events).encode()
    stamp = str(int(time.time() if at is None else at))
    signature = key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    if tamper:
        body = tamper(body)
    return client.post(
        "/webhooks/sendgrid/tracking/",
        data=body,
        content_type="application/json",
        HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_SIGNATURE=base64.b64encode(signature).decode(),
        HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_TIMESTAMP=stamp,
        **(auth(auth_pair) if auth_pair else {}),
    )


# --- Mailgun -------------------------------------------------------------------------------------


def mailgun_event(job=None, *, event="delivered", email=None, **fields) -> dict:
    data = {
        "id": uuid.uuid4().hex[:22],
        "event": event,
        "timestamp": time.time(),
        "recipient": email or (job.to_email if job else "nobody@example.com"),
        "message": {"headers": {"message-id": f"{uuid.uuid4().hex}@mg.example"}},
        "user-variables": {"gpmas_job": str(job.pk)} if job else {},
        **fields,
    }
    return data


def post_mailgun(
    client, data, *, at=None, key=MAILGUN_KEY, tamper=None, auth_pair=BASIC, token=None
):
    stamp = str(int(time.time() if at is None else at))
    token = token or uuid.uuid4().hex
    signature = hmac.new(key.encode(), f"{stamp}{token}".encode(), hashlib.sha256).hexdigest()
    body = {"signature": {"timestamp": stamp, "token": token, "signature": signature}}
    raw = json.dumps({**body, "event-data": data}).encode()
    if tamper:
        raw = tamper(raw)
    return client.post(
        "/webhooks/mailgun/tracking/",
        data=raw,
        content_type="application/json",
        **(auth(auth_pair) if auth_pair else {}),
    )


# --- Amazon SES through SNS ----------------------------------------------------------------------

TOPIC = "arn:aws:sns:us-east-1:123456789012:gpmas-events"
CERT_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0123456789abcdef.pem"
SNS_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_SNS_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def certificate_pem(key, *, valid_days: int = 1) -> bytes:
    """A self-signed certificate for ``key``, valid from a day ago for ``valid_days`` more (the
    sandbox's own, which plays SNS in development)."""
    return certificate(key, valid_days=valid_days)


SNS_CERT = certificate_pem(SNS_KEY)


def sign_sns(message: dict, *, version="1", key=SNS_KEY, cert_url=CERT_URL) -> dict:
    """Signed as SNS signs: "Key\nValue\n" for the type's keys in order, RSA PKCS#1 v1.5 with
    SHA1 (SignatureVersion 1) or SHA256 (2)."""
    if message["Type"] == "Notification":
        keys = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
    else:
        keys = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    text = "".join(f"{k}\n{message[k]}\n" for k in keys if k in message).encode()
    digest = hashes.SHA1() if version == "1" else hashes.SHA256()
    signature = key.sign(text, padding.PKCS1v15(), digest)
    return {
        **message,
        "SignatureVersion": version,
        "SigningCertURL": cert_url,
        "Signature": base64.b64encode(signature).decode(),
    }


def sns_time(at: float | None = None) -> str:
    """An SNS ``Timestamp`` (``2026-12-02T01:00:02.000Z``) for ``at``, default now."""
    when = dt.datetime.fromtimestamp(time.time() if at is None else at, dt.UTC)
    return when.isoformat(timespec="milliseconds").removesuffix("+00:00") + "Z"


def ses_notification(job=None, *, event="Delivery", email=None, message_id=None, **extra) -> dict:
    address = email or (job.to_email if job else "nobody@example.com")
    headers = [{"name": "X-GPMAS-Job", "value": str(job.pk)}] if job else []
    ses_event = {
        "eventType": event,
        "mail": {
            "messageId": message_id or uuid.uuid4().hex,
            "destination": [address],
            "headers": headers,
            "timestamp": "2026-12-02T01:00:00.000Z",
        },
        **extra,
    }
    if event == "Delivery":
        ses_event["delivery"] = {"recipients": [address], "timestamp": "2026-12-02T01:00:01Z"}
    return {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": TOPIC,
        "Message": json.dumps(ses_event),
        "Timestamp": sns_time(),
    }


def post_ses(client, sns: dict, *, raw=None, auth_pair=BASIC, sign=True):
    """Post ``sns``, signed unless ``sign`` is False (or it carries a Signature already)."""
    if sign and "Signature" not in sns:
        sns = sign_sns(sns)
    return client.post(
        "/webhooks/amazon_ses/tracking/",
        data=raw if raw is not None else json.dumps(sns),
        content_type="text/plain; charset=UTF-8",
        HTTP_X_AMZ_SNS_MESSAGE_TYPE=sns.get("Type", ""),
        HTTP_X_AMZ_SNS_MESSAGE_ID=sns.get("MessageId", ""),
        **(auth(auth_pair) if auth_pair else {}),
    )
