"""SendGrid v3 mail/send request validation: one check per part of the payload.

``validate(body)`` returns SendGrid's error objects (``{"message", "field", "help"}``) in the
order SendGrid's own checks would list them: sender, personalizations, subject, content, headers,
attachments. An empty list means the request is accepted.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

MAX_PERSONALIZATIONS = 1000
MAX_SUBSTITUTION_BYTES = 10_000

Errors = list[dict[str, Any]]


def error(message: str, field: str | None = None) -> dict[str, Any]:
    return {"message": message, "field": field, "help": None}


def valid_address(value: Any) -> bool:
    if not isinstance(value, str) or value.count("@") != 1:
        return False
    local, domain = value.split("@")
    return bool(local) and "." in domain and not any(c.isspace() or c in "<>," for c in value)


def string_map(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )


def substitutions_size(substitutions: dict[str, str]) -> int:
    return sum(len(k.encode()) + len(v.encode()) for k, v in substitutions.items())


def recipients(personalization: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """``(kind, field, email)`` for every to, cc and bcc entry of a personalization."""
    found = []
    for kind in ("to", "cc", "bcc"):
        entries = personalization.get(kind) or []
        if isinstance(entries, list):
            for index, entry in enumerate(entries):
                email = entry.get("email") if isinstance(entry, dict) else None
                found.append((kind, f"{kind}.{index}.email", email))
    return found


def validate(body: dict[str, Any]) -> Errors:
    errors = _check_from(body.get("from"))
    personalizations = body.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        errors.append(
            error(
                "The personalizations field is required and must have at least one "
                "personalization.",
                "personalizations",
            )
        )
        personalizations = []
    errors += _check_personalizations(personalizations)
    errors += _check_subject(body, personalizations)
    if not body.get("template_id"):
        errors += _check_content(body.get("content"))
    if "headers" in body and not string_map(body["headers"]):
        errors.append(error("Invalid type. Expected: object of strings.", "headers"))
    errors += _check_attachments(body.get("attachments") or [])
    return errors


def _check_from(sender: Any) -> Errors:
    if not isinstance(sender, dict) or not sender.get("email"):
        return [
            error(
                "The from object must be provided for every email send. It is an object that "
                "requires the email parameter, but may also contain a name parameter.",
                "from.email",
            )
        ]
    if not valid_address(sender["email"]):
        return [error("The from email does not contain a valid address.", "from.email")]
    return []


def _check_personalizations(personalizations: list[Any]) -> Errors:
    errors: Errors = []
    if len(personalizations) > MAX_PERSONALIZATIONS:
        errors.append(
            error(
                "The personalizations field may not have more than 1000 personalizations.",
                "personalizations",
            )
        )
    seen: set[str] = set()  # an address may appear once in the whole request
    for index, personalization in enumerate(personalizations):
        prefix = f"personalizations.{index}"
        if not isinstance(personalization, dict):
            errors.append(error("Invalid type. Expected: object.", prefix))
            continue
        errors += _check_recipients(personalization, prefix, seen)
        errors += _check_personalization_maps(personalization, prefix)
    return errors


def _check_recipients(personalization: dict[str, Any], prefix: str, seen: set[str]) -> Errors:
    errors: Errors = []
    if not isinstance(personalization.get("to"), list) or not personalization["to"]:
        errors.append(
            error(
                "The to array is required for all personalization objects, and must have "
                "at least one email object with a valid email address.",
                f"{prefix}.to",
            )
        )
    for kind, field, email in recipients(personalization):
        if not valid_address(email):
            errors.append(error("Does not contain a valid address.", f"{prefix}.{field}"))
            continue
        key = email.lower()
        if key in seen:
            errors.append(
                error(
                    "Each email address in the personalization block should be unique "
                    "between to, cc, and bcc. We found the first duplicate instance of "
                    f"[{email}] in the {prefix}.{kind} field.",
                    f"{prefix}.{kind}",
                )
            )
        seen.add(key)
    return errors


def _check_personalization_maps(personalization: dict[str, Any], prefix: str) -> Errors:
    errors: Errors = []
    if "headers" in personalization and not string_map(personalization["headers"]):
        errors.append(error("Invalid type. Expected: object of strings.", f"{prefix}.headers"))
    substitutions = personalization.get("substitutions", {})
    if not string_map(substitutions):
        errors.append(
            error("Invalid type. Expected: object of strings.", f"{prefix}.substitutions")
        )
    elif substitutions_size(substitutions) > MAX_SUBSTITUTION_BYTES:
        errors.append(
            error(
                "The total size of your substitutions may not exceed 10,000 bytes per "
                "personalization object.",
                f"{prefix}.substitutions",
            )
        )
    return errors


def _check_subject(body: dict[str, Any], personalizations: list[Any]) -> Errors:
    every_has_subject = bool(personalizations) and all(
        isinstance(p, dict) and p.get("subject") for p in personalizations
    )
    if body.get("subject") or body.get("template_id") or every_has_subject:
        return []
    return [
        error(
            "The subject is required. You can get around this requirement if you use a "
            "template with a subject defined or if every personalization has a subject "
            "defined.",
            "subject",
        )
    ]


def _check_content(content: Any) -> Errors:
    if not isinstance(content, list) or not content:
        return [
            error(
                "Unless a valid template_id is provided, the content parameter is required. "
                "There must be at least one defined content block.",
                "content",
            )
        ]
    return [
        error("Content blocks need a type and a value.", f"content.{index}")
        for index, block in enumerate(content)
        if not isinstance(block, dict) or not block.get("type") or "value" not in block
    ]


def _check_attachments(attachments: list[Any]) -> Errors:
    errors: Errors = []
    for index, attachment in enumerate(attachments):
        if not isinstance(attachment, dict) or not attachment.get("filename"):
            errors.append(
                error("The attachment filename parameter is required.", f"attachments.{index}")
            )
            continue
        try:
            base64.b64decode(attachment.get("content") or "", validate=True)
        except (binascii.Error, ValueError):
            errors.append(
                error(
                    "The attachment content must be base64 encoded.",
                    f"attachments.{index}.content",
                )
            )
    return errors
