import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from django.conf import settings

from delivery.message import OutgoingMessage
from delivery.providers import ses_bulk
from delivery.providers.base import Adapter, BatchAnswer, ErrorClass, SendError

# docs/providers.md, Amazon SES. SES has no Retry-After; a throttled provider waits for the
# ranking's default.
ERROR_CODES = {
    "TooManyRequestsException": ErrorClass.TRANSIENT,
    "Throttling": ErrorClass.RATE_LIMITED,
    "ThrottlingException": ErrorClass.RATE_LIMITED,
    "LimitExceededException": ErrorClass.RATE_LIMITED,
    "SendingPausedException": ErrorClass.PROVIDER_ERROR,
    "AccountSuspendedException": ErrorClass.PROVIDER_ERROR,
    "MailFromDomainNotVerifiedException": ErrorClass.PROVIDER_ERROR,
    "MessageRejected": ErrorClass.RECIPIENT_REJECTED,
    "BadRequestException": ErrorClass.RECIPIENT_REJECTED,
}


class SesAdapter(Adapter):
    required_secrets = ("ACCESS_KEY_ID", "SECRET_ACCESS_KEY")

    def __init__(self, config) -> None:
        super().__init__(config)
        self.client = boto3.session.Session().client(
            "sesv2",
            region_name=config.region or "us-east-1",
            endpoint_url=config.api_base_url or None,
            aws_access_key_id=config.secrets["ACCESS_KEY_ID"],
            aws_secret_access_key=config.secrets["SECRET_ACCESS_KEY"],
            # Retries are ours: boto3's own would resend after a read timeout (a duplicate).
            config=Config(
                retries={"total_max_attempts": 1},  # one call; "max_attempts" counts retries
                connect_timeout=config.connect_timeout,
                read_timeout=config.read_timeout,
            ),
        )

    @property
    def max_batch(self) -> int:
        # 1 turns SendBulkEmail off (an IAM policy that allows only ses:SendEmail).
        return min(settings.GPMAS_SES_BATCH_SIZE, ses_bulk.MAX_DESTINATIONS)

    def send(self, message: OutgoingMessage) -> str:
        response = self._call(
            self.client.send_email,
            # SES wants a non-ASCII display name encoded (RFC 2047), as in the header.
            FromEmailAddress=message.from_header,
            Destination={"ToAddresses": [message.to_email]},
            Content={"Raw": {"Data": message.to_bytes()}},
        )
        return response.get("MessageId", "")

    def batch_key(self, message: OutgoingMessage):
        return ses_bulk.batch_key(message)

    def send_batch(self, messages: list[OutgoingMessage]) -> BatchAnswer:
        """One SendBulkEmail call; SES answers for each entry, so the answer is per message: its
        own SES message id, or the error that refused it alone. A call that took none raises
        the first entry's error, as a refused call would."""
        response = self._call(self.client.send_bulk_email, **ses_bulk.request(messages))
        results = response.get("BulkEmailEntryResults") or []
        if len(results) != len(messages):  # which entries went out cannot be told
            raise SendError(
                ErrorClass.UNKNOWN,
                f"{len(results)} entry results for {len(messages)} entries",
                code="entry_results",
            )
        answers = [ses_bulk.entry_answer(result) for result in results]
        if all(isinstance(answer, SendError) for answer in answers):
            raise answers[0]
        return answers

    def _call(self, operation, **request) -> dict:
        try:
            return operation(**request)
        except ClientError as exc:
            raise self._error(exc) from exc
        except (ReadTimeoutError, ConnectionClosedError) as exc:
            raise SendError(ErrorClass.UNKNOWN, f"no response: {exc}", code="no_response") from exc
        except EndpointConnectionError as exc:
            raise SendError(
                ErrorClass.TRANSIENT, f"connection failed: {exc}", code="connection"
            ) from exc
        except BotoCoreError as exc:
            raise SendError(
                ErrorClass.TRANSIENT, f"{type(exc).__name__}: {exc}", code=type(exc).__name__
            ) from exc

    @staticmethod
    def _error(exc: ClientError) -> SendError:
        error = exc.response.get("Error", {})
        code = error.get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code == "MessageRejected" and ses_bulk.identity_refused(error.get("Message", "")):
            # An unverified sender (or, in SES's own sandbox, recipient): the account's setup,
            # not this message, is at fault; another provider may well deliver it.
            error_class = ErrorClass.PROVIDER_ERROR
        elif code in ERROR_CODES:
            error_class = ERROR_CODES[code]
        elif status >= 500:
            error_class = ErrorClass.TRANSIENT
        else:
            error_class = ErrorClass.PROVIDER_ERROR  # AccessDenied, NotFound, signature: ours
        return SendError(
            error_class,
            f"{code or status}: {error.get('Message', '')}"[:500],
            code=code or str(status),
        )
