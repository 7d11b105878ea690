"""The SES emulator through boto3's sesv2 client (boto3 sesv2 -> emulator -> moto): simple and raw
sends captured, moto's own checks, and what the faults do to the client (error codes, 429,
retries, hangs, outages)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError

from sandbox import Fault, Sandbox

from .helpers import ICS, SENDER, mime_message, ses_client, ses_raw, ses_simple


def test_ses_simple_and_raw_are_captured(sandbox: Sandbox) -> None:
    client = ses_client(sandbox)
    simple = ses_simple(client, "ann@example.org", job="ses-simple")
    raw = ses_raw(client, "bob@example.org", job="ses-raw")

    by_job = {m.job: m for m in sandbox.inbox.messages("ses")}
    assert by_job["ses-simple"].to == ["ann@example.org"]
    assert by_job["ses-simple"].subject == "Invitation"
    assert by_job["ses-simple"].provider_message_id == simple["MessageId"]
    assert by_job["ses-raw"].to == ["bob@example.org"]
    assert by_job["ses-raw"].from_email == SENDER
    assert by_job["ses-raw"].provider_message_id == raw["MessageId"]
    assert by_job["ses-raw"].attachments == [("invite.ics", "text/calendar", ICS)]
    assert "https://gpmas.local/i/abc" in by_job["ses-raw"].text
    assert by_job["ses-raw"].raw.startswith("From: GPMAS")


def test_ses_raw_without_destination_uses_the_mime_recipients(sandbox: Sandbox) -> None:
    mime = mime_message("dora@example.org", job="ses-nodest").as_bytes()
    ses_client(sandbox).send_email(Content={"Raw": {"Data": mime}})
    (message,) = sandbox.inbox.messages("ses")
    assert (message.to, message.from_email) == (["dora@example.org"], SENDER)


def test_ses_unverified_sender_is_rejected_by_moto(sandbox: Sandbox) -> None:
    client = ses_client(sandbox)
    with pytest.raises(client.exceptions.MessageRejected):
        client.send_email(
            FromEmailAddress="someone@unverified.test",
            Destination={"ToAddresses": ["ann@example.org"]},
            Content={"Simple": {"Subject": {"Data": "x"}, "Body": {"Text": {"Data": "x"}}}},
        )
    assert sandbox.inbox.stats()["ses"]["rejected"] == 1
    assert sandbox.inbox.stats()["ses"]["faulted"] == 0


@pytest.mark.parametrize(
    ("fault", "code", "status", "modeled"),
    [
        (Fault(status=429), "TooManyRequestsException", 429, True),
        (Fault(code="Throttling"), "Throttling", 400, False),
        (Fault(code="LimitExceededException"), "LimitExceededException", 400, True),
        (Fault(code="SendingPausedException"), "SendingPausedException", 400, True),
        (Fault(code="AccountSuspendedException"), "AccountSuspendedException", 400, True),
        (
            Fault(code="MailFromDomainNotVerifiedException"),
            "MailFromDomainNotVerifiedException",
            400,
            True,
        ),
        (Fault(code="MessageRejected"), "MessageRejected", 400, True),
        (Fault(status=400), "BadRequestException", 400, True),
        (Fault(status=500), "InternalFailure", 500, False),
        (Fault(status=503), "InternalFailure", 503, False),
        (Fault(status=403), "AccessDeniedException", 403, False),
        (Fault(status=500, code="ServiceUnavailable"), "ServiceUnavailable", 500, False),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_ses_faults_raise_client_errors_with_the_code(sandbox, fault, code, status, modeled):
    sandbox.faults.set("ses", fault)
    client = ses_client(sandbox)
    with pytest.raises(ClientError) as caught:
        ses_raw(client)
    error = caught.value.response
    assert error["Error"]["Code"] == code
    assert error["ResponseMetadata"]["HTTPStatusCode"] == status
    if modeled:
        assert isinstance(caught.value, getattr(client.exceptions, code))
    assert sandbox.inbox.stats()["ses"] == {
        "calls": 1,
        "accepted": 0,
        "rejected": 1,
        "faulted": 1,
        "messages": 0,
        "in_flight": 0,
    }


def test_ses_429_retry_after_header(sandbox: Sandbox) -> None:
    sandbox.faults.set("ses", Fault(status=429, retry_after=9))
    with pytest.raises(ClientError) as caught:
        ses_simple(ses_client(sandbox))
    assert caught.value.response["ResponseMetadata"]["HTTPHeaders"]["retry-after"] == "9"


def test_ses_max_attempts_1_still_retries_once(sandbox: Sandbox) -> None:
    # botocore reads retries={"max_attempts": N} as N *retries*; only total_max_attempts=1
    # means a single call. An adapter that must not send twice needs the latter.
    sandbox.faults.set("ses", Fault(status=500))
    client = ses_client(sandbox, retries={"max_attempts": 1})
    with pytest.raises(ClientError):
        ses_simple(client)
    assert sandbox.inbox.stats()["ses"]["calls"] == 2


def test_ses_hang_and_outage(sandbox: Sandbox) -> None:
    sandbox.faults.set("ses", Fault(outage=True))
    with pytest.raises(ConnectionClosedError):
        ses_raw(ses_client(sandbox))

    sandbox.faults.set("ses", Fault(hang=True, hang_seconds=1.2))
    with pytest.raises(ReadTimeoutError):
        ses_raw(ses_client(sandbox, read_timeout=0.4), job="ses-hung")
    assert sandbox.inbox.wait_for(lambda inbox: len(inbox.messages(job="ses-hung")) == 1, 5)
