import requests
from mailgun.client import Client
from mailgun.config import RetryPolicy
from mailgun.handlers.error_handler import ApiError, MailgunTimeoutError

from delivery.message import JOB_METADATA, OutgoingMessage
from delivery.providers.base import Adapter, ErrorClass, SendError, http_error_class

PUBLIC_API = "https://api.mailgun.net"


class MailgunAdapter(Adapter):
    required_secrets = ("API_KEY",)
    required_settings = {"domain": "A Mailgun provider needs its sending domain."}

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


def _after_send(error: requests.ConnectionError) -> bool:
    """A connection dropped without a response after the request went out."""
    text = repr(error)
    return "RemoteDisconnected" in text or "Connection aborted" in text
