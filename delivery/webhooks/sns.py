"""Amazon SNS message signatures, which anymail does not check (docs/architecture.md, "Delivery
events"). A message is taken only when its topic is in ``GPMAS_SES_SNS_TOPIC_ARNS`` and its
signature verifies against the signing certificate, fetched over HTTPS from
``sns.<region>.amazonaws.com/SimpleNotificationService-<hex>.pem`` only (kept per process),
with SignatureVersion 1 (SHA1) or 2 (SHA256). A subscription is confirmed only for an allowed
topic, only at an SNS host. In development (``DEBUG``) the sandbox's certificate URL,
``GPMAS_SANDBOX_SNS_CERT_URL``, is trusted too: the sandbox plays SNS there (docs/sandbox.md,
"Delivery events").
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import json
import re
from urllib.parse import urlsplit

import requests
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from django.conf import settings

SNS_HOST = re.compile(r"sns\.[a-z0-9-]+\.amazonaws\.com")
# SNS's signing certificates are at /SimpleNotificationService-<hex>.pem: nothing else on an SNS
# host is fetched as one.
CERT_PATH = re.compile(r"/SimpleNotificationService-[0-9a-f]+\.pem")
CONFIRMATION_KEYS = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn")
SIGNED_KEYS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (*CONFIRMATION_KEYS, "Type"),
    "UnsubscribeConfirmation": (*CONFIRMATION_KEYS, "Type"),
}
HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}
FETCH_TIMEOUT = 5


class Refused(Exception):
    """Not a genuine SNS message for one of our topics."""


def verify(body: bytes) -> dict:
    """The SNS message in ``body``, once its topic and signature check out; else ``Refused``."""
    try:
        message = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Refused("body is not JSON") from None
    if not isinstance(message, dict) or message.get("Type") not in SIGNED_KEYS:
        raise Refused("not an SNS message")
    if message.get("TopicArn") not in settings.GPMAS_SES_SNS_TOPIC_ARNS:
        raise Refused(f"topic {str(message.get('TopicArn'))[:200]!r} is not allowed")
    algorithm = HASHES.get(str(message.get("SignatureVersion")))
    if algorithm is None:
        raise Refused("unknown SignatureVersion")
    try:
        signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
        certificate(str(message.get("SigningCertURL", ""))).public_key().verify(
            signature, string_to_sign(message), padding.PKCS1v15(), algorithm()
        )
    except (binascii.Error, InvalidSignature, TypeError, ValueError):
        raise Refused("bad signature") from None
    return message


def string_to_sign(message: dict) -> bytes:
    keys = SIGNED_KEYS[message["Type"]]
    return "".join(f"{key}\n{message[key]}\n" for key in keys if key in message).encode()


def is_sns_url(url: str) -> bool:
    parts = urlsplit(url)
    return (
        parts.scheme == "https"
        and SNS_HOST.fullmatch(parts.hostname or "") is not None
        and parts.port in (None, 443)
        and not parts.username
    )


def is_sandbox_certificate(url: str) -> bool:
    return bool(settings.DEBUG and url and url == settings.GPMAS_SANDBOX_SNS_CERT_URL)


def certificate(url: str) -> x509.Certificate:
    parts = urlsplit(url)
    trusted = is_sns_url(url) and CERT_PATH.fullmatch(parts.path) and not parts.query
    if not (trusted or is_sandbox_certificate(url)):
        raise Refused(f"signing certificate not from an SNS host: {url[:200]!r}")
    cert = _certificate(url)
    now = dt.datetime.now(dt.UTC)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise Refused("signing certificate expired or not yet valid")
    return cert


@functools.lru_cache(maxsize=16)
def _certificate(url: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(fetch_pem(url))
    except (requests.RequestException, ValueError) as exc:
        raise Refused(f"signing certificate unavailable: {exc}") from None


def fetch_pem(url: str) -> bytes:
    response = requests.get(url, timeout=FETCH_TIMEOUT, allow_redirects=False)
    response.raise_for_status()
    return response.content


def confirm_subscription(message: dict) -> None:
    """Visit the SubscribeURL of a verified confirmation for an allowed topic."""
    url = str(message.get("SubscribeURL", ""))
    if not is_sns_url(url):
        raise Refused(f"SubscribeURL not at an SNS host: {url[:200]!r}")
    requests.get(url, timeout=FETCH_TIMEOUT, allow_redirects=False).raise_for_status()
