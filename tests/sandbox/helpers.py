"""The real SDKs, configured the way the GPMAS adapters should be, pointed at a Sandbox."""

from __future__ import annotations

import base64
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import boto3
import python_http_client.exceptions as sg_errors
import sendgrid
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from mailgun.client import Client as MailgunClient
from mailgun.config import RetryPolicy
from mailgun.handlers.error_handler import ApiError
from sendgrid.helpers.mail import Attachment, Header, Mail

from sandbox import Sandbox
from sandbox.config import DEFAULTS

ICS = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//GPMAS//test//EN\r\nEND:VCALENDAR\r\n"
SENDER = "invitations@example.com"


def sendgrid_client(
    sandbox: Sandbox, *, api_key: str = DEFAULTS.api_key, timeout: float = 3.0
) -> sendgrid.SendGridAPIClient:
    client = sendgrid.SendGridAPIClient(api_key=api_key, host=sandbox.http_url)
    client.client.timeout = timeout  # the SDK's default is no timeout at all
    return client


def sendgrid_mail(
    to: str | list[str] = "guest@example.org", *, job: str = "job-1", subject: str = "Invitation"
) -> Mail:
    mail = Mail(
        from_email=SENDER,
        to_emails=to,
        subject=subject,
        plain_text_content="Open https://gpmas.local/i/abc to answer.",
        html_content="<p>Open <a href='https://gpmas.local/i/abc'>your invitation</a></p>",
        is_multiple=isinstance(to, list),
    )
    mail.header = Header("X-GPMAS-Job", job)
    mail.attachment = Attachment(
        file_content=base64.b64encode(ICS.encode()).decode(),
        file_name="invite.ics",
        file_type="text/calendar",
        disposition="attachment",
    )
    return mail


def ses_client(
    sandbox: Sandbox, *, read_timeout: float = 5.0, retries: dict[str, Any] | None = None
) -> Any:
    # total_max_attempts=1 means no retry. Note that max_attempts=1 means ONE RETRY (two calls):
    # see test_ses_max_attempts_1_still_retries_once.
    config = Config(
        retries=retries or {"total_max_attempts": 1},
        connect_timeout=2,
        read_timeout=read_timeout,
    )
    return boto3.client(
        "sesv2",
        endpoint_url=sandbox.http_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=config,
    )


def mime_message(
    to: str = "guest@example.org", *, job: str = "job-1", subject: str = "Invitation"
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"GPMAS <{SENDER}>"
    message["To"] = to
    message["Subject"] = subject
    message["X-GPMAS-Job"] = job
    message.set_content("Open https://gpmas.local/i/abc to answer.")
    message.add_alternative(
        "<p>Open <a href='https://gpmas.local/i/abc'>it</a></p>", subtype="html"
    )
    message.add_attachment(ICS.encode(), maintype="text", subtype="calendar", filename="invite.ics")
    return message


def ses_simple(client: Any, to: str = "guest@example.org", *, job: str = "job-1") -> dict:
    return client.send_email(
        FromEmailAddress=SENDER,
        Destination={"ToAddresses": [to]},
        Content={
            "Simple": {
                "Subject": {"Data": "Invitation"},
                "Body": {"Text": {"Data": "Open https://gpmas.local/i/abc"}},
                "Headers": [{"Name": "X-GPMAS-Job", "Value": job}],
            }
        },
    )


def ses_raw(client: Any, to: str = "guest@example.org", *, job: str = "job-1") -> dict:
    return client.send_email(
        FromEmailAddress=SENDER,
        Destination={"ToAddresses": [to]},
        Content={"Raw": {"Data": mime_message(to, job=job).as_bytes()}},
    )


def mailgun_client(
    sandbox: Sandbox,
    *,
    api_key: str = DEFAULTS.api_key,
    timeout: tuple[float, float] = (2.0, 5.0),
) -> MailgunClient:
    # The SDK retries 429/5xx and network errors 3 times by default (sleeping up to 10 s):
    # retries are ours, so turn its own off.
    return MailgunClient(
        auth=("api", api_key),
        api_url=sandbox.http_url,
        timeout=timeout,
        retry_policy=RetryPolicy(max_retries=0),
    )


def mailgun_send(
    client: MailgunClient,
    to: str | list[str] = "guest@example.org",
    *,
    job: str = "job-1",
    domain: str = "example.com",
    attach: bool = True,
    **extra: str,
) -> Any:
    data = {
        "from": f"GPMAS <{SENDER}>",
        "to": to,
        "subject": "Invitation",
        "text": "Open https://gpmas.local/i/abc to answer.",
        "html": "<p>Open it</p>",
        "h:X-GPMAS-Job": job,
        **extra,
    }
    files = [("attachment", ("invite.ics", ICS.encode(), "text/calendar"))] if attach else None
    return client.messages.create(data=data, domain=domain, files=files)


def smtp_send(
    sandbox: Sandbox,
    to: str = "guest@example.org",
    *,
    job: str = "job-1",
    login: bool = True,
    timeout: float = 5.0,
    subject: str = "Invitation",
) -> None:
    with smtplib.SMTP(sandbox.smtp_host, sandbox.smtp_port, timeout=timeout) as smtp:
        if login:
            smtp.login(sandbox.smtp_username, sandbox.smtp_password)
        smtp.send_message(mime_message(to, job=job, subject=subject))


@dataclass
class Outcome:
    ok: bool
    status: int | None = None
    error: BaseException | None = None


def send(provider: str, sandbox: Sandbox, *, job: str = "job-1", timeout: float = 3.0) -> Outcome:
    """One message through the provider's real SDK, the outcome normalised."""
    try:
        if provider == "sendgrid":
            sendgrid_client(sandbox, timeout=timeout).send(sendgrid_mail(job=job))
        elif provider == "mailgun":
            with mailgun_client(sandbox, timeout=(2.0, timeout)) as client:
                response = mailgun_send(client, job=job)
            if response.status_code != 200:
                return Outcome(False, response.status_code)
        elif provider == "ses":
            ses_raw(ses_client(sandbox, read_timeout=timeout), job=job)
        elif provider == "smtp":
            smtp_send(sandbox, job=job, timeout=timeout)
        else:
            raise AssertionError(provider)
    except sg_errors.HTTPError as exc:
        return Outcome(False, exc.status_code, exc)
    except ClientError as exc:
        return Outcome(False, exc.response["ResponseMetadata"]["HTTPStatusCode"], exc)
    except smtplib.SMTPResponseException as exc:
        return Outcome(False, exc.smtp_code, exc)
    except (OSError, ApiError, BotoCoreError, smtplib.SMTPException) as exc:
        return Outcome(False, None, exc)
    return Outcome(True)
