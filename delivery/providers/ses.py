import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from delivery.message import OutgoingMessage
from delivery.providers.base import Adapter, ErrorClass, SendError

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

    def send(self, message: OutgoingMessage) -> str:
        try:
            response = self.client.send_email(
                # SES wants a non-ASCII display name encoded (RFC 2047), as in the header.
                FromEmailAddress=message.from_header,
                Destination={"ToAddresses": [message.to_email]},
                Content={"Raw": {"Data": message.to_bytes()}},
            )
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
        return response.get("MessageId", "")

    @staticmethod
    def _error(exc: ClientError) -> SendError:
        error = exc.response.get("Error", {})
        code = error.get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code == "MessageRejected" and _identity_refused(error.get("Message", "")):
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


# SES says "Email address is not verified. The following identities failed the check ...";
# moto says "Did not have authority to send from email ...".
IDENTITY_REFUSALS = ("not verified", "authority to send from")


def _identity_refused(message: str) -> bool:
    return any(phrase in message for phrase in IDENTITY_REFUSALS)
