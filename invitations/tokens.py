"""Invitation tokens: 256 random bits in the emailed link, only their SHA-256 in the database.

Looking a token up by its hash is the constant-time comparison: the database compares hashes,
never the secret itself.
"""

import hashlib
import secrets

from django.conf import settings
from django.urls import reverse

from delivery import unsubscribe


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_new() -> tuple[str, str]:
    """A fresh (raw token, hash) pair."""
    token = secrets.token_urlsafe(32)
    return token, token_hash(token)


def invitation_url(token: str) -> str:
    return settings.GPMAS_SITE_URL.rstrip("/") + reverse("guest_invitation", args=[token])


def unsubscribe_url(organizer_id: int, address: str) -> str:
    """The one-click unsubscribe link (RFC 8058) for ``address`` from this organizer's mail."""
    token = unsubscribe.token_for(organizer_id, address)
    return settings.GPMAS_SITE_URL.rstrip("/") + reverse("guest_unsubscribe", args=[token])
