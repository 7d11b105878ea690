import json

import requests
from mailgun.client import Client
from mailgun.config import RetryPolicy
from mailgun.handlers.error_handler import ApiError, MailgunTimeoutError

from delivery.message import JOB_HEADER, JOB_METADATA, OutgoingMessage
from delivery.providers.base import Adapter, ErrorClass, SendError, http_error_class

PUBLIC_API = "https://api.mailgun.net"
# Batch sending (docs/providers.md, Mailgun): up to 1,000 recipients per call; with
# ``recipient-variables`` every recipient gets a message of their own, and ``%recipient.KEY%`` in
# the subject, bodies, ``h:`` headers and ``v:`` variables is replaced by that recipient's value.
MAX_RECIPIENTS = 1000
# A message whose own values are larger goes alone, so a full call stays well under Mailgun's
# 25 MB limit on a request (1,000 x 10 kB).
MAX_VARIABLE_BYTES = 10_000


class MailgunAdapter(Adapter):
    required_secrets = ("API_KEY",)
    required_settings = {"domain": "A Mailgun provider needs its sending domain."}
    max_batch = MAX_RECIPIENTS
    # recipient-variables are keyed by address: one address twice in a call would get one
    # recipient's values twice.
    distinct_recipients = True

    def __init__(self, config) -> None:
        super().__init__(config)
        self.client = Client(
            auth=("api", config.secrets["API_KEY"]),
            api_url=config.api_base_url or PUBLIC_API,
            timeout=(config.connect_timeout, config.read_timeout),
            # The SDK retries 429, 5xx and network errors by default, sleeping in our worker and
            # possibly resending after a read timeout; retries are ours.
            retry_policy=RetryPolicy(max_retries=0),
        )

    def batch_key(self, message: OutgoingMessage):
        """Messages from the same sender with the same header names, without attachments."""
        if message.ics or _size(_variables(message)) > MAX_VARIABLE_BYTES:
            return None
        return (message.from_email, bool(message.html_body), tuple(sorted(message.headers)))

    def batch_data(self, messages: list[OutgoingMessage]) -> dict:
        """One request: every field that differs between the messages is a recipient variable,
        so each recipient's copy has its own subject, bodies and headers (the job's identity
        among them)."""
        first = messages[0]
        data = {
            "from": first.from_email,
            "to": [message.to_email for message in messages],
            "subject": "%recipient.subject%",
            "text": "%recipient.text%",
        }
        if first.html_body:
            data["html"] = "%recipient.html%"
        for name in first.headers:
            data[f"h:{name}"] = f"%recipient.h:{name}%"
        if first.job_id:  # each recipient's own job, echoed in its events' user-variables
            data[f"v:{JOB_METADATA}"] = f"%recipient.h:{JOB_HEADER}%"
        data["recipient-variables"] = json.dumps(
            {message.to_email: _variables(message) for message in messages}
        )
        return data

    def send_batch(self, messages: list[OutgoingMessage]) -> str:
        return self._post(self.batch_data(messages), files=None)

    def send(self, message: OutgoingMessage) -> str:
        data = {
            "from": message.from_email,
            "to": message.to_email,
            "subject": message.subject,
            "text": message.text_body,
        }
        if message.html_body:
            data["html"] = message.html_body
        for name, value in message.headers.items():
            data[f"h:{name}"] = value
        if message.job_id:  # echoed in the event's user-variables
            data[f"v:{JOB_METADATA}"] = message.job_id
        files = None
        if message.ics:
            files = [("attachment", ("invite.ics", message.ics.encode(), "text/calendar"))]
        return self._post(data, files=files)

    def _post(self, data: dict, *, files) -> str:
        try:
            response = self.client.messages.create(
                data=data, files=files, domain=self.config.domain
            )
        except MailgunTimeoutError as exc:
            if isinstance(exc.__cause__, requests.ConnectTimeout):
                raise SendError(ErrorClass.TRANSIENT, "connect timeout", code="connection") from exc
            raise SendError(ErrorClass.UNKNOWN, f"no response: {exc}", code="no_response") from exc
        except ApiError as exc:
            cause = exc.__cause__
            sent = isinstance(cause, requests.ConnectionError) and _after_send(cause)
            error_class = ErrorClass.UNKNOWN if sent else ErrorClass.TRANSIENT
            raise SendError(error_class, f"{exc}"[:500], code="connection") from exc
        if response.status_code == 200:
            return response.json().get("id", "")
        raise self._error(response)

    @staticmethod
    def _error(response: requests.Response) -> SendError:
        status = response.status_code
        # A new domain's 404 can be temporary (docs/providers.md, Mailgun): not the message's
        # fault.
        error_class = ErrorClass.TRANSIENT if status == 404 else http_error_class(status)
        retry_after = None
        header = response.headers.get("Retry-After", "")
        if status == 429 and header.strip().isdigit():
            retry_after = float(header)
        return SendError(
            error_class,
            f"HTTP {status}: {response.text[:500]}",
            code=str(status),
            retry_after=retry_after,
        )


def _variables(message: OutgoingMessage) -> dict[str, str]:
    variables = {"subject": message.subject, "text": message.text_body}
    if message.html_body:
        variables["html"] = message.html_body
    variables.update({f"h:{name}": value for name, value in message.headers.items()})
    return variables


def _size(variables: dict[str, str]) -> int:
    return sum(len(key) + len(value.encode()) for key, value in variables.items())


def _after_send(error: requests.ConnectionError) -> bool:
    """A connection dropped without a response after the request went out."""
    text = repr(error)
    return "RemoteDisconnected" in text or "Connection aborted" in text
