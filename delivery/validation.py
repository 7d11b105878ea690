"""Checks at the outbox's boundary: nothing invalid becomes a job (docs/invariants.md, "Bad input").

HTTP APIs may pass CR/LF in a header straight through (docs/providers.md), so names, subjects and
header values are checked here, before any message is built.
"""

import email.utils
import functools
import re

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

_HEADER_NAME = re.compile(r"^[!-9;-~]+$")  # RFC 5322 field name: printable ASCII except ':'
MAX_SUBJECT = 255


def check_single_line(value: str, field: str) -> None:
    if "\r" in value or "\n" in value:
        raise ValidationError({field: "must not contain line breaks (CR or LF)."})


def check_address(value: str, field: str) -> str:
    check_single_line(value, field)
    try:
        validate_email(value)
    except ValidationError:
        raise ValidationError({field: f"{value!r} is not a valid email address."}) from None
    return value.strip()


@functools.lru_cache(maxsize=256)
def check_from(value: str) -> str:
    """A sender may carry a display name: ``GPMAS <invitations@example.com>``. Remembered: a
    bulk invite checks the same sender ten thousand times (a refused one is not remembered)."""
    check_single_line(value, "from_email")
    name, address = email.utils.parseaddr(value)
    if not address:
        raise ValidationError({"from_email": f"{value!r} is not a valid sender."})
    check_address(address, "from_email")
    return value.strip()


def check_subject(value: str) -> str:
    check_single_line(value, "subject")
    if not value.strip():
        raise ValidationError({"subject": "must not be empty."})
    if len(value) > MAX_SUBJECT:
        raise ValidationError({"subject": f"must be at most {MAX_SUBJECT} characters."})
    return value


def check_headers(headers: dict[str, str]) -> dict[str, str]:
    for name, value in headers.items():
        if not isinstance(name, str) or not _HEADER_NAME.match(name):
            raise ValidationError({"headers": f"{name!r} is not a valid header name."})
        if not isinstance(value, str):
            raise ValidationError({"headers": f"header {name} must be text."})
        check_single_line(value, "headers")
    return headers
