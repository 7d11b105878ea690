"""The keys the sandbox signs its delivery-event webhooks with, as each provider holds its own:
a SendGrid ECDSA P-256 key pair (the site gets the public key, as SendGrid shows it), a Mailgun
HMAC signing key, and an RSA key with a self-signed certificate standing in for Amazon SNS's
signing certificate (served by the sandbox at ``SNS_CERT_PATH``; the site trusts that URL only
in development, ``GPMAS_SANDBOX_SNS_CERT_URL``).

Made once per directory and kept there (``./dev up``: ``data/sandbox-webhook-keys``), or made in
memory (tests). ``site_environment`` is what the site needs to verify them.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

SNS_CERT_PATH = "/sns/SimpleNotificationService-sandbox.pem"
SNS_TOPIC_ARN = "arn:aws:sns:us-east-1:000000000000:gpmas-sandbox-events"
FILES = {"sendgrid": "sendgrid-ecdsa.pem", "mailgun": "mailgun-signing-key", "sns": "sns-rsa.pem"}


@dataclass(frozen=True)
class WebhookKeys:
    sendgrid: ec.EllipticCurvePrivateKey
    mailgun: str
    sns: rsa.RSAPrivateKey
    sns_certificate: bytes  # PEM, self-signed for ``sns``

    @classmethod
    def generate(cls) -> WebhookKeys:
        sns = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return cls(
            ec.generate_private_key(ec.SECP256R1()), secrets.token_hex(24), sns, certificate(sns)
        )

    @classmethod
    def load_or_create(cls, directory: Path) -> WebhookKeys:
        """The keys kept in ``directory``, made (and written, owner-only) the first time."""
        paths = {name: directory / file for name, file in FILES.items()}
        if not all(path.exists() for path in paths.values()):
            directory.mkdir(parents=True, exist_ok=True)
            keys = cls.generate()
            for name, data in keys._files().items():
                paths[name].write_bytes(data)
                paths[name].chmod(0o600)
            return keys
        sendgrid = serialization.load_pem_private_key(paths["sendgrid"].read_bytes(), None)
        sns = serialization.load_pem_private_key(paths["sns"].read_bytes(), None)
        assert isinstance(sendgrid, ec.EllipticCurvePrivateKey)
        assert isinstance(sns, rsa.RSAPrivateKey)
        mailgun = paths["mailgun"].read_text().strip()
        return cls(sendgrid, mailgun, sns, certificate(sns))

    def _files(self) -> dict[str, bytes]:
        def pem(key) -> bytes:
            return key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )

        return {
            "sendgrid": pem(self.sendgrid),
            "mailgun": self.mailgun.encode(),
            "sns": pem(self.sns),
        }

    @property
    def sendgrid_verification_key(self) -> str:
        """The public key as SendGrid's settings page shows it: base64 DER, no PEM lines."""
        der = self.sendgrid.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode()


def certificate(key: rsa.RSAPrivateKey, *, valid_days: int = 365) -> bytes:
    """A self-signed certificate for ``key``, valid from a day ago for ``valid_days`` more (made
    afresh on every load, so a kept key never has an expired certificate)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.sandbox.invalid")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=valid_days))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def site_environment(keys: WebhookKeys, *, secret: str, sandbox_http_url: str) -> dict[str, str]:
    """The site's variables that make it accept the sandbox's events (``./dev up``, tests)."""
    return {
        "GPMAS_WEBHOOK_SECRETS": secret,
        "GPMAS_SENDGRID_WEBHOOK_VERIFICATION_KEY": keys.sendgrid_verification_key,
        "GPMAS_MAILGUN_WEBHOOK_SIGNING_KEY": keys.mailgun,
        "GPMAS_SES_SNS_TOPIC_ARNS": SNS_TOPIC_ARN,
        "GPMAS_SANDBOX_SNS_CERT_URL": sandbox_http_url + SNS_CERT_PATH,
    }
