import re
import smtplib
import time
import uuid

from delivery.message import WIRE, OutgoingMessage
from delivery.providers.base import Adapter, BatchAnswer, ErrorClass, SendError


def smtp_error_class(code: int) -> ErrorClass:
    """docs/providers.md: 4xx transient except 421/454 (throttling); 535 auth; 5xx permanent."""
    if code in (421, 454):
        return ErrorClass.RATE_LIMITED
    if code in (530, 534, 535):
        return ErrorClass.PROVIDER_ERROR
    if 400 <= code < 500:
        return ErrorClass.TRANSIENT
    if code >= 500:
        return ErrorClass.RECIPIENT_REJECTED
    return ErrorClass.TRANSIENT


# A connection idle for longer is checked with NOOP before it carries a message: servers drop
# idle clients, and a message sent into a dropped connection would look like an unknown outcome.
CHECK_AFTER_IDLE_SECONDS = 2.0
LEADING_DOT = re.compile(rb"^\.", re.MULTILINE)
# One call carries up to this many messages over its session, one after another (issue #15):
# what the send path does between two calls (record the last, reserve quota, read the halt
# switch) is then paid once per call, and a connection spends its time sending. No further
# message starts once the call has run CALL_SECONDS, so a halt, read before each call, still
# stops sending within a fraction of a second (gpmas/time_budget.py counts it in a call's length).
MESSAGES_PER_CALL = 4
CALL_SECONDS = 0.5


class SmtpAdapter(Adapter):
    """One connection per adapter, kept between sends and batches, reopened after errors."""

    optional_secrets = ("USERNAME", "PASSWORD")
    required_settings = {"host": "An SMTP provider needs a host."}
    max_batch = MESSAGES_PER_CALL

    def __init__(self, config) -> None:
        super().__init__(config)
        self.connection: smtplib.SMTP | None = None
        self.last_used = 0.0

    def _connect(self) -> smtplib.SMTP:
        if self.connection is not None:
            if time.monotonic() - self.last_used < CHECK_AFTER_IDLE_SECONDS or self._alive():
                return self.connection
            self.close()
        try:
            connection = smtplib.SMTP(
                self.config.host,
                self.config.port or 25,
                timeout=self.config.connect_timeout,
            )
            if self.config.use_tls:
                connection.starttls()
            username = self.config.secrets.get("USERNAME")
            if username:
                connection.login(username, self.config.secrets.get("PASSWORD", ""))
        except smtplib.SMTPResponseException as exc:
            raise self._error(exc, session=True) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise SendError(
                ErrorClass.TRANSIENT, f"connection failed: {exc!r}", code="connection"
            ) from exc
        connection.sock.settimeout(self.config.read_timeout)
        self.connection = connection
        return connection

    def _alive(self) -> bool:
        try:
            return self.connection.noop()[0] == 250
        except (smtplib.SMTPException, OSError):
            return False

    def send(self, message: OutgoingMessage) -> str:
        connection = self._connect()
        mime = message.to_mime()
        self.last_used = time.monotonic()
        try:
            refused = self._transfer(
                connection, message.from_address, message.to_email, mime.as_bytes(policy=WIRE)
            )
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            self._reset_after_error(code)
            raise self._error(smtplib.SMTPResponseException(code, text)) from exc
        except smtplib.SMTPResponseException as exc:
            self._reset_after_error(exc.smtp_code)
            # A refused sender is the relay's setup, not the recipient's address.
            raise self._error(exc, session=isinstance(exc, smtplib.SMTPSenderRefused)) from exc
        except (TimeoutError, smtplib.SMTPServerDisconnected, OSError) as exc:
            self.close()
            raise SendError(
                ErrorClass.UNKNOWN, f"no response: {exc!r}", code="no_response"
            ) from exc
        if refused:
            code, text = next(iter(refused.values()))
            raise self._error(smtplib.SMTPResponseException(code, text))
        return str(mime["Message-ID"] or uuid.uuid4().hex).strip("<>")

    def batch_key(self, message: OutgoingMessage) -> str:
        return "session"  # every message has its own envelope: any may share a session

    def send_batch(self, messages: list[OutgoingMessage]) -> BatchAnswer:
        """The messages one after another over the session, each answered on its own. A
        rejected recipient stops only its message; any other failure stops the call, and the
        messages after it are not sent (a definite error: they go on alone). Raises when every
        message certainly failed."""
        started, answers = time.monotonic(), []
        stop = ""  # why the call's remaining messages are not sent
        for message in messages:
            if answers and not stop and time.monotonic() - started >= CALL_SECONDS:
                stop = "the call's time was up"
            if stop:
                answers.append(
                    SendError(ErrorClass.TRANSIENT, f"not sent: {stop}", code="not_sent")
                )
                continue
            try:
                answers.append(self.send(message))
            except SendError as error:
                answers.append(error)
                if error.error_class != ErrorClass.RECIPIENT_REJECTED:
                    stop = f"an earlier message failed ({error})"
        if all(
            isinstance(answer, SendError) and answer.error_class != ErrorClass.UNKNOWN
            for answer in answers
        ):
            raise answers[0]
        return answers

    @staticmethod
    def _transfer(connection: smtplib.SMTP, sender: str, recipient: str, data: bytes) -> dict:
        """One message over an open session: ``sendmail`` for one recipient, in two round trips
        instead of four where the server offers PIPELINING (RFC 2920), which smtplib lacks.

        Raises smtplib's own exceptions for refusals, as ``sendmail`` does; the caller resets.
        """
        connection.ehlo_or_helo_if_needed()
        if not connection.has_extn("pipelining"):
            return connection.sendmail(sender, [recipient], data)
        connection.send(f"MAIL FROM:<{sender}>\r\nRCPT TO:<{recipient}>\r\nDATA\r\n")
        mail, rcpt, start = (connection.getreply() for _ in range(3))
        if start[0] == 354 and (mail[0] != 250 or rcpt[0] not in (250, 251)):
            # A server that takes DATA after a refusal gets an empty message, which it drops.
            connection.send(b".\r\n")
            connection.getreply()
        if mail[0] != 250:
            raise smtplib.SMTPSenderRefused(*mail, sender)
        if rcpt[0] not in (250, 251):
            raise smtplib.SMTPRecipientsRefused({recipient: rcpt})
        if start[0] != 354:
            raise smtplib.SMTPDataError(*start)
        quoted = LEADING_DOT.sub(b"..", data)  # dot-stuffing (RFC 5321 4.5.2)
        connection.send(quoted + (b"" if quoted.endswith(b"\r\n") else b"\r\n") + b".\r\n")
        code, reply = connection.getreply()
        if code != 250:
            raise smtplib.SMTPDataError(code, reply)
        return {}

    def _reset_after_error(self, code: int) -> None:
        if code == 421 or self.connection is None:
            self.close()  # 421: the server is closing the channel
            return
        try:
            self.connection.rset()
        except (smtplib.SMTPException, OSError):
            self.close()

    @staticmethod
    def _error(exc: smtplib.SMTPResponseException, *, session: bool = False) -> SendError:
        """``session``: the refusal came at greeting, login or MAIL FROM, so a permanent code
        says the relay cannot send for us at all, whoever the recipient."""
        if isinstance(exc.smtp_error, bytes):
            text = exc.smtp_error.decode(errors="replace")
        else:
            text = str(exc.smtp_error)
        error_class = smtp_error_class(exc.smtp_code)
        if session and error_class == ErrorClass.RECIPIENT_REJECTED:
            error_class = ErrorClass.PROVIDER_ERROR
        return SendError(
            error_class, f"SMTP {exc.smtp_code}: {text}"[:500], code=str(exc.smtp_code)
        )

    def close(self) -> None:
        if self.connection is None:
            return
        try:
            self.connection.quit()
        except (smtplib.SMTPException, OSError):
            self.connection.close()
        self.connection = None
