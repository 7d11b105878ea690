"""SES v2 ``SendBulkEmail`` for ``SesAdapter.send_batch`` (docs/providers.md, Amazon SES): which
messages can share a call, the request, and what each entry's answer means.

Every message of a call is a template entry whose values are the message's own subject and
bodies (``{{subject}}``, ``{{text}}``, ``{{html}}``, as Mailgun's recipient-variables carry them),
and whose ``ReplacementHeaders`` are its own headers, so each recipient gets a message of their
own: job identity, invite link and List-Unsubscribe included. The template is inline
(``TemplateContent``): nothing is stored at SES.
"""

from __future__ import annotations

import json
import re

from delivery.message import OutgoingMessage
from delivery.providers.base import ErrorClass, SendError

MAX_DESTINATIONS = 50  # entries per SendBulkEmail call
# A message whose own values are larger goes alone (50 x 10 kB keeps a call near half a MB).
MAX_VARIABLE_BYTES = 10_000
# SES's limits on a header it is given as a field (botocore's model: MessageHeader).
MAX_HEADERS, MAX_HEADER_NAME, MAX_HEADER_VALUE = 15, 126, 995
_HEADER_VALUE = re.compile(r"^[ -~]+$")  # printable ASCII, as SES requires
# Handlebars' delimiters: a message containing one goes alone (README, Decisions).
_DELIMITERS = ("{{", "}}")

ENTRY_ERRORS = {
    "MESSAGE_REJECTED": ErrorClass.RECIPIENT_REJECTED,
    "ACCOUNT_THROTTLED": ErrorClass.RATE_LIMITED,
    "ACCOUNT_DAILY_QUOTA_EXCEEDED": ErrorClass.RATE_LIMITED,
    "TRANSIENT_FAILURE": ErrorClass.TRANSIENT,
    "FAILED": ErrorClass.TRANSIENT,
}
# Any other status (unverified MAIL FROM, paused or suspended account, an unknown configuration
# set, INVALID_PARAMETER: our request) is the provider's setup or ours: a provider error.

# SES says "Email address is not verified. The following identities failed the check ...";
# moto says "Did not have authority to send from email ...".
IDENTITY_REFUSALS = ("not verified", "authority to send from")


def identity_refused(message: str) -> bool:
    return any(phrase in message for phrase in IDENTITY_REFUSALS)


def batch_key(message: OutgoingMessage):
    """Messages from the same sender and of the same shape (HTML or not) share a call; one
    that a template entry cannot carry exactly goes alone through SendEmail."""
    if message.ics or not _headers_fit(message.headers):
        return None  # an inline template's attachments are shared by every entry
    values = _variables(message)
    if _size(values) > MAX_VARIABLE_BYTES or _has_delimiter(values, message.headers):
        return None
    return (message.from_email, bool(message.html_body))


def request(messages: list[OutgoingMessage]) -> dict:
    first = messages[0]
    template = {"Subject": "{{subject}}", "Text": "{{text}}"}
    if first.html_body:
        template["Html"] = "{{html}}"  # SES does not HTML-escape a value in the HTML part
    return {
        "FromEmailAddress": first.from_header,
        "DefaultContent": {"Template": {"TemplateContent": template, "TemplateData": "{}"}},
        "BulkEmailEntries": [_entry(message) for message in messages],
    }


def _entry(message: OutgoingMessage) -> dict:
    data = json.dumps(_variables(message), ensure_ascii=False)
    return {
        "Destination": {"ToAddresses": [message.to_email]},
        "ReplacementEmailContent": {"ReplacementTemplate": {"ReplacementTemplateData": data}},
        "ReplacementHeaders": [{"Name": n, "Value": v} for n, v in message.headers.items()],
    }


def entry_answer(result: dict) -> str | SendError:
    """One entry's result: its SES message id, or why SES refused that message."""
    status = result.get("Status", "")
    if status == "SUCCESS":
        return result.get("MessageId", "")
    text = result.get("Error", "")
    error_class = ENTRY_ERRORS.get(status, ErrorClass.PROVIDER_ERROR)
    if status == "MESSAGE_REJECTED" and identity_refused(text):
        error_class = ErrorClass.PROVIDER_ERROR  # the sender, not this message (SesAdapter)
    return SendError(error_class, f"{status}: {text}"[:500], code=status)


def _variables(message: OutgoingMessage) -> dict[str, str]:
    values = {"subject": message.subject, "text": message.text_body}
    if message.html_body:
        values["html"] = message.html_body
    return values


def _headers_fit(headers: dict[str, str]) -> bool:
    if len(headers) > MAX_HEADERS:
        return False
    return all(
        len(name) <= MAX_HEADER_NAME
        and len(value) <= MAX_HEADER_VALUE
        and _HEADER_VALUE.match(value)
        for name, value in headers.items()
    )


def _has_delimiter(values: dict[str, str], headers: dict[str, str]) -> bool:
    texts = (*values.values(), *headers.values())
    return any(delimiter in text for text in texts for delimiter in _DELIMITERS)


def _size(values: dict[str, str]) -> int:
    return sum(len(key) + len(value.encode()) for key, value in values.items())
