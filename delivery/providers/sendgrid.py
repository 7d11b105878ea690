import base64
import http.client
import time
import urllib.error

from python_http_client import exceptions as http_errors
from sendgrid import SendGridAPIClient

from delivery.message import JOB_METADATA, OutgoingMessage
from delivery.providers.base import Adapter, ErrorClass, SendError, http_error_class

PUBLIC_API = "https://api.sendgrid.com"
# A batch carries each message's own body as a substitution for these tags; SendGrid allows up to
# 1,000 personalizations per request and 10,000 bytes of substitutions per personalization.
TEXT_TAG, HTML_TAG = "-gpmas-text-", "-gpmas-html-"
MAX_PERSONALIZATIONS = 1000
MAX_SUBSTITUTION_BYTES = 10_000


def _custom_args(message: OutgoingMessage) -> dict:
    """The job's id as SendGrid echoes it in every event of that personalization."""
    return {"custom_args": {JOB_METADATA: message.job_id}} if message.job_id else {}


class SendGridAdapter(Adapter):
    required_secrets = ("API_KEY",)
    max_batch = MAX_PERSONALIZATIONS

    def __init__(self, config) -> None:
        super().__init__(config)
        self.client = SendGridAPIClient(
            api_key=config.secrets["API_KEY"], host=config.api_base_url or PUBLIC_API
        )
        # The SDK sends without any timeout unless told (docs/providers.md, SendGrid); urllib
        # takes one number.
        self.client.client.timeout = config.read_timeout

    def payload(self, message: OutgoingMessage) -> dict:
        body = {
            "personalizations": [{"to": [{"email": message.to_email}], **_custom_args(message)}],
            "from": {"email": message.from_address},
            "subject": message.subject,
            "content": [{"type": "text/plain", "value": message.text_body}],
            "headers": dict(message.headers),
        }
        if message.from_display_name:
            body["from"]["name"] = message.from_display_name
        if message.html_body:
            body["content"].append({"type": "text/html", "value": message.html_body})
        if message.ics:
            body["attachments"] = [
                {
                    "content": base64.b64encode(message.ics.encode()).decode(),
                    "type": f"text/calendar; method={message.ics_method}",
                    "filename": "invite.ics",
                    "disposition": "attachment",
                }
            ]
        return body

    def batch_key(self, message: OutgoingMessage):
        """Messages from the same sender, without attachments, whose bodies fit a substitution."""
        if message.ics:
            return None
        size = len(message.text_body.encode()) + len(message.html_body.encode()) + 2 * len(TEXT_TAG)
        if size > MAX_SUBSTITUTION_BYTES:
            return None
        return (message.from_email, bool(message.html_body))

    def batch_payload(self, messages: list[OutgoingMessage]) -> dict:
        """One request, one personalization per message: its recipient, subject, headers and
        body (as substitutions of the shared content's tags)."""
        body = self.payload(messages[0])
        body.pop("subject")
        body.pop("headers")
        body["content"] = [{"type": "text/plain", "value": TEXT_TAG}]
        if messages[0].html_body:
            body["content"].append({"type": "text/html", "value": HTML_TAG})
        body["personalizations"] = [
            {
                "to": [{"email": message.to_email}],
                "subject": message.subject,
                "headers": dict(message.headers),
                "substitutions": {TEXT_TAG: message.text_body, HTML_TAG: message.html_body},
                **_custom_args(message),
            }
            for message in messages
        ]
        return body

    def send(self, message: OutgoingMessage) -> str:
        return self._post(self.payload(message))

    def send_batch(self, messages: list[OutgoingMessage]) -> str:
        return self._post(self.batch_payload(messages))

    def _post(self, body: dict) -> str:
        try:
            response = self.client.client.mail.send.post(request_body=body)
        except http_errors.HTTPError as exc:
            raise self._error(exc) from exc
        except urllib.error.URLError as exc:
            # urllib wraps failures before the request went out (refused, DNS, connect timeout).
            raise SendError(
                ErrorClass.TRANSIENT, f"connection failed: {exc.reason}", code="connection"
            ) from exc
        except (TimeoutError, http.client.HTTPException, ConnectionError) as exc:
            # The request was sent and no answer came back: SendGrid may have accepted it.
            raise SendError(
                ErrorClass.UNKNOWN, f"no response: {exc!r}", code="no_response"
            ) from exc
        return response.headers.get("X-Message-Id", "") or ""

    @staticmethod
    def _error(exc: http_errors.HTTPError) -> SendError:
        status = exc.status_code
        body = exc.body.decode(errors="replace") if isinstance(exc.body, bytes) else str(exc.body)
        retry_after = None
        if status == 429:
            reset = (exc.headers or {}).get("X-RateLimit-Reset")
            if reset and reset.strip().isdigit():
                retry_after = max(0.0, int(reset) - time.time())
        return SendError(
            http_error_class(status),
            f"HTTP {status}: {body[:500]}",
            code=str(status),
            retry_after=retry_after,
        )
