"""The emulators fit the real SDKs: what they capture, and what each fault does to each SDK."""

from __future__ import annotations

import base64
import http.client
import json
import smtplib
import time

import pytest
import python_http_client.exceptions as sg_errors
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError
from mailgun.handlers.error_handler import ApiError, MailgunTimeoutError
from sendgrid.helpers.mail import Attachment, CustomArg

from sandbox import PROVIDERS, Fault, Sandbox

from .helpers import (
    ICS,
    SENDER,
    mailgun_client,
    mailgun_send,
    mime_message,
    send,
    sendgrid_client,
    sendgrid_mail,
    ses_client,
    ses_raw,
    ses_simple,
    smtp_send,
)

# --- SendGrid ---------------------------------------------------------------------------------


def test_sendgrid_captures_one_copy_per_recipient(sandbox: Sandbox) -> None:
    mail = sendgrid_mail(["ann@example.org", "bob@example.org"], job="job-42")
    mail.custom_arg = CustomArg("job", "job-42")

    response = sendgrid_client(sandbox).send(mail)

    assert response.status_code == 202
    assert response.body in (b"", "")
    message_id = response.headers["X-Message-Id"]
    assert int(response.headers["X-RateLimit-Limit"]) == 600
    assert int(response.headers["X-RateLimit-Reset"]) > time.time()
    copies = sandbox.inbox.messages("sendgrid")
    assert sorted(m.to[0] for m in copies) == ["ann@example.org", "bob@example.org"]
    for copy in copies:
        assert copy.to == [copy.to[0]]
        assert copy.from_email == SENDER
        assert copy.subject == "Invitation"
        assert copy.headers["X-GPMAS-Job"] == "job-42"
        assert copy.job == "job-42"
        assert copy.attachments == [("invite.ics", "text/calendar", ICS)]
        assert "https://gpmas.local/i/abc" in copy.text and "<a href" in copy.html
        assert copy.provider_message_id == message_id
        assert copy.metadata == {"job": "job-42"}
        assert json.loads(copy.raw)["personalizations"]
    assert sandbox.inbox.stats()["sendgrid"] == {
        "calls": 1,
        "accepted": 1,
        "rejected": 0,
        "faulted": 0,
        "messages": 2,
        "in_flight": 0,
    }


def test_sendgrid_merges_personalization_headers(sandbox: Sandbox) -> None:
    body = {
        "from": {"email": SENDER},
        "subject": "Top",
        "headers": {"X-GPMAS-Job": "top", "X-Top": "1"},
        "content": [{"type": "text/plain", "value": "hi"}],
        "personalizations": [
            {"to": [{"email": "a@example.org"}], "headers": {"X-GPMAS-Job": "p0"}},
            {"to": [{"email": "b@example.org"}], "subject": "Own"},
        ],
    }
    sendgrid_client(sandbox).client.mail.send.post(request_body=body)

    first, second = sandbox.inbox.messages("sendgrid")
    assert (first.to, first.job, first.headers["X-Top"], first.subject) == (
        ["a@example.org"],
        "p0",
        "1",
        "Top",
    )
    assert (second.to, second.job, second.subject) == (["b@example.org"], "top", "Own")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda b: b.pop("subject"), "subject"),
        (lambda b: b.pop("from"), "from.email"),
        (lambda b: b.pop("content"), "content"),
        (lambda b: b.update(personalizations=[]), "personalizations"),
        (
            lambda b: b["personalizations"][0]["to"].append({"email": "ann@example.org"}),
            "personalizations.0.to",
        ),
        (
            lambda b: b["personalizations"].append({"to": [{"email": "ANN@example.org"}]}),
            "personalizations.1.to",
        ),
    ],
    ids=["no-subject", "no-from", "no-content", "no-personalizations", "dup-in-to", "dup-across"],
)
def test_sendgrid_rejects_bad_requests_with_its_error_json(sandbox, change, field) -> None:
    body = {
        "from": {"email": SENDER},
        "subject": "Hi",
        "content": [{"type": "text/plain", "value": "hi"}],
        "personalizations": [{"to": [{"email": "ann@example.org"}]}],
    }
    change(body)

    with pytest.raises(sg_errors.BadRequestsError) as caught:
        sendgrid_client(sandbox).client.mail.send.post(request_body=body)

    assert caught.value.status_code == 400
    errors = json.loads(caught.value.body)["errors"]
    assert field in [e["field"] for e in errors]
    assert all(set(e) == {"message", "field", "help"} for e in errors)
    assert "X-RateLimit-Remaining" in caught.value.headers
    assert sandbox.inbox.messages() == []
    assert sandbox.inbox.stats()["sendgrid"]["rejected"] == 1


def test_sendgrid_wrong_key_is_401(sandbox: Sandbox) -> None:
    with pytest.raises(sg_errors.UnauthorizedError) as caught:
        sendgrid_client(sandbox, api_key="wrong").send(sendgrid_mail())
    assert caught.value.status_code == 401
    assert sandbox.inbox.stats()["sendgrid"]["calls"] == 1


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (500, sg_errors.InternalServerError),
        (503, sg_errors.ServiceUnavailableError),
        (401, sg_errors.UnauthorizedError),
        (403, sg_errors.ForbiddenError),
        (413, sg_errors.PayloadTooLargeError),
    ],
)
def test_sendgrid_fixed_status(sandbox: Sandbox, status: int, error_class: type) -> None:
    sandbox.faults.set("sendgrid", Fault(status=status))
    client = sendgrid_client(sandbox)
    for _ in range(2):
        with pytest.raises(error_class) as caught:
            client.send(sendgrid_mail())
        assert caught.value.status_code == status
        assert json.loads(caught.value.body)["errors"][0]["message"]
    assert sandbox.inbox.stats()["sendgrid"] == {
        "calls": 2,
        "accepted": 0,
        "rejected": 2,
        "faulted": 2,
        "messages": 0,
        "in_flight": 0,
    }


def test_sendgrid_429_carries_retry_after_and_reset(sandbox: Sandbox) -> None:
    sandbox.faults.set("sendgrid", Fault(status=429, retry_after=7))
    before = int(time.time())
    with pytest.raises(sg_errors.TooManyRequestsError) as caught:
        sendgrid_client(sandbox).send(sendgrid_mail())
    headers = caught.value.headers
    assert headers["Retry-After"] == "7"
    assert before + 7 <= int(headers["X-RateLimit-Reset"]) <= int(time.time()) + 7
    assert headers["X-RateLimit-Remaining"] == "0"


def test_sendgrid_hang_fires_the_client_timeout_and_may_still_deliver(sandbox: Sandbox) -> None:
    sandbox.faults.set("sendgrid", Fault(hang=True, hang_seconds=1.5))
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        sendgrid_client(sandbox, timeout=0.4).send(sendgrid_mail(job="hung"))
    assert time.monotonic() - started < 1.4
    # The hung request is handled once the hang ends: the outcome was unknown to the client.
    assert sandbox.inbox.wait_for(lambda inbox: len(inbox.messages(job="hung")) == 1, 5)


def test_hang_with_a_status_hangs_then_fails_so_nothing_is_delivered(sandbox: Sandbox) -> None:
    sandbox.faults.set("sendgrid", Fault(hang=True, hang_seconds=0.8, status=503))
    with pytest.raises(TimeoutError):
        sendgrid_client(sandbox, timeout=0.3).send(sendgrid_mail())
    assert sandbox.inbox.wait_for(lambda inbox: inbox.stats()["sendgrid"]["faulted"] == 1, 5)
    assert sandbox.inbox.messages() == []


def test_a_call_still_hanging_at_clear_is_neither_captured_nor_counted(sandbox: Sandbox) -> None:
    sandbox.faults.set("ses", Fault(hang=True, hang_seconds=1.0))
    with pytest.raises(ReadTimeoutError):
        ses_raw(ses_client(sandbox, read_timeout=0.3), job="stale")
    assert sandbox.inbox.wait_for(lambda inbox: inbox.in_flight("ses") == 1, 2)
    sandbox.inbox.clear()  # what a test fixture does between tests

    assert sandbox.inbox.wait_for(lambda inbox: inbox.in_flight() == 0, 5)
    assert sandbox.inbox.messages() == []
    assert sandbox.inbox.stats()["ses"]["calls"] == 0


def test_sendgrid_outage_drops_the_connection(sandbox: Sandbox) -> None:
    sandbox.faults.set("sendgrid", Fault(outage=True))
    with pytest.raises(http.client.RemoteDisconnected):
        sendgrid_client(sandbox).send(sendgrid_mail())
    assert sandbox.inbox.stats()["sendgrid"]["calls"] == 1


# --- Mailgun ----------------------------------------------------------------------------------


def test_mailgun_form_and_multipart_are_captured(sandbox: Sandbox) -> None:
    with mailgun_client(sandbox) as client:
        plain = mailgun_send(client, "Ann <ann@example.org>", job="mg-1", attach=False)
        with_file = mailgun_send(client, "bob@example.org", job="mg-2", **{"v:job": "mg-2"})

    assert plain.status_code == 200 and with_file.status_code == 200
    assert plain.json()["message"] == "Queued. Thank you."
    assert plain.json()["id"].startswith("<") and plain.json()["id"].endswith("@example.com>")
    first, second = sandbox.inbox.messages("mailgun")
    assert (first.to, first.job, first.attachments, first.from_email) == (
        ["ann@example.org"],
        "mg-1",
        [],
        SENDER,
    )
    assert (second.to, second.job, second.metadata) == (
        ["bob@example.org"],
        "mg-2",
        {"job": "mg-2"},
    )
    assert second.attachments == [("invite.ics", "text/calendar", ICS)]
    assert second.provider_message_id == with_file.json()["id"]


def test_mailgun_batch_with_recipient_variables(sandbox: Sandbox) -> None:
    variables = {"ann@example.org": {"name": "Ann"}, "bob@example.org": {"name": "Bob"}}
    with mailgun_client(sandbox) as client:
        response = client.messages.create(
            domain="example.com",
            data={
                "from": SENDER,
                "to": list(variables),
                "subject": "Hello %recipient.name%",
                "text": "Hi %recipient.name%",
                "recipient-variables": json.dumps(variables),
            },
        )
    assert response.status_code == 200
    copies = {m.to[0]: m for m in sandbox.inbox.messages("mailgun")}
    assert copies["ann@example.org"].subject == "Hello Ann"
    assert copies["bob@example.org"].text == "Hi Bob"
    assert copies["bob@example.org"].headers["To"] == "bob@example.org"


def test_mailgun_mime_endpoint(sandbox: Sandbox) -> None:
    mime = mime_message("carol@example.org", job="mg-mime").as_bytes()
    with mailgun_client(sandbox) as client:
        response = client.mimemessage.create(
            domain="gpmas.local",
            data={"to": "carol@example.org"},
            files={"message": ("message.mime", mime)},
        )
    assert response.status_code == 200
    (message,) = sandbox.inbox.messages("mailgun")
    assert (message.to, message.job, message.subject) == (
        ["carol@example.org"],
        "mg-mime",
        "Invitation",
    )
    assert message.attachments == [("invite.ics", "text/calendar", ICS)]


@pytest.mark.parametrize(
    ("kwargs", "status", "message"),
    [
        ({"api_key": "wrong"}, 401, None),
        ({"domain": "unknown.test"}, 404, "Domain not found: unknown.test"),
        ({"to": []}, 400, "to parameter is missing"),
    ],
    ids=["bad-key", "unknown-domain", "no-to"],
)
def test_mailgun_errors(sandbox: Sandbox, kwargs: dict, status: int, message: str | None) -> None:
    with mailgun_client(sandbox, api_key=kwargs.pop("api_key", sandbox.api_key)) as client:
        response = mailgun_send(client, **kwargs)
    assert response.status_code == status
    if message:
        assert response.json() == {"message": message}
    assert sandbox.inbox.stats()["mailgun"]["rejected"] == 1


def test_mailgun_faults(sandbox: Sandbox) -> None:
    with mailgun_client(sandbox, timeout=(2.0, 0.4)) as client:
        sandbox.faults.set("mailgun", Fault(status=429, retry_after=3))
        response = mailgun_send(client)
        assert response.status_code == 429 and response.headers["Retry-After"] == "3"
        assert "message" in response.json()

        sandbox.faults.set("mailgun", Fault(status=502))
        assert mailgun_send(client).status_code == 502

        sandbox.faults.set("mailgun", Fault(outage=True))
        with pytest.raises(ApiError, match="Network routing failed"):
            mailgun_send(client)

        sandbox.faults.set("mailgun", Fault(hang=True, hang_seconds=1.2))
        with pytest.raises(MailgunTimeoutError):
            mailgun_send(client, job="mg-hung")
    assert sandbox.inbox.wait_for(lambda inbox: len(inbox.messages(job="mg-hung")) == 1, 5)
    assert sandbox.inbox.stats()["mailgun"]["calls"] == 4


# --- SES (boto3 sesv2 -> emulator -> moto) ----------------------------------------------------


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


# --- SMTP -------------------------------------------------------------------------------------


def test_smtp_auth_plain_login_and_none_on_one_connection(sandbox: Sandbox) -> None:
    with smtplib.SMTP(sandbox.smtp_host, sandbox.smtp_port, timeout=5) as smtp:
        smtp.ehlo()
        assert {"PLAIN", "LOGIN"} <= set(smtp.esmtp_features["auth"].upper().split())
        smtp.user, smtp.password = sandbox.smtp_username, sandbox.smtp_password
        code, _ = smtp.auth("LOGIN", smtp.auth_login)
        assert code == 235
        for job in ("smtp-1", "smtp-2", "smtp-3"):
            smtp.send_message(mime_message(job=job))
    smtp_send(sandbox, job="smtp-plain")  # login() picks PLAIN
    smtp_send(sandbox, job="smtp-anon", login=False)

    jobs = [m.job for m in sandbox.inbox.messages("smtp")]
    assert jobs == ["smtp-1", "smtp-2", "smtp-3", "smtp-plain", "smtp-anon"]
    message = sandbox.inbox.messages("smtp")[0]
    assert message.to == ["guest@example.org"]
    assert message.attachments == [("invite.ics", "text/calendar", ICS)]
    assert message.provider_message_id
    assert sandbox.inbox.stats()["smtp"]["accepted"] == 5


def test_smtp_wrong_password_is_535(sandbox: Sandbox) -> None:
    with (
        smtplib.SMTP(sandbox.smtp_host, sandbox.smtp_port, timeout=5) as smtp,
        pytest.raises(smtplib.SMTPAuthenticationError) as caught,
    ):
        smtp.login(sandbox.smtp_username, "wrong")
    assert caught.value.smtp_code == 535
    assert sandbox.inbox.stats()["smtp"]["rejected"] == 1


@pytest.mark.parametrize("status", [451, 452, 550, 553, 554])
def test_smtp_status_fault_answers_at_data(sandbox: Sandbox, status: int) -> None:
    sandbox.faults.set("smtp", Fault(status=status))
    with pytest.raises(smtplib.SMTPDataError) as caught:
        smtp_send(sandbox)
    assert caught.value.smtp_code == status


def test_smtp_421_closes_and_535_fails_auth(sandbox: Sandbox) -> None:
    sandbox.faults.set("smtp", Fault(status=421))
    with smtplib.SMTP(sandbox.smtp_host, sandbox.smtp_port, timeout=5) as smtp:
        with pytest.raises(smtplib.SMTPDataError) as caught:
            smtp.send_message(mime_message())
        assert caught.value.smtp_code == 421
        with pytest.raises(smtplib.SMTPServerDisconnected):
            smtp.noop()

    sandbox.faults.set("smtp", Fault(status=535))
    with pytest.raises(smtplib.SMTPAuthenticationError):
        smtp_send(sandbox)
    with pytest.raises(smtplib.SMTPDataError) as caught:
        smtp_send(sandbox, login=False)
    assert caught.value.smtp_code == 535


def test_smtp_outage_and_hang(sandbox: Sandbox) -> None:
    sandbox.faults.set("smtp", Fault(outage=True))
    with pytest.raises(smtplib.SMTPConnectError) as caught:
        smtp_send(sandbox)
    assert caught.value.smtp_code == 421

    sandbox.faults.set("smtp", Fault(hang=True, hang_seconds=1.2))
    with pytest.raises(smtplib.SMTPServerDisconnected, match="timed out"):
        smtp_send(sandbox, job="smtp-hung", timeout=0.4)
    assert sandbox.inbox.wait_for(lambda inbox: len(inbox.messages(job="smtp-hung")) == 1, 5)
    assert sandbox.inbox.stats()["smtp"]["calls"] == 2


# --- Every provider ---------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_error_rate_one_and_zero(sandbox: Sandbox, provider: str) -> None:
    sandbox.faults.set(provider, Fault(error_rate=1.0))
    outcomes = [send(provider, sandbox) for _ in range(3)]
    default = 451 if provider == "smtp" else 500
    assert [(o.ok, o.status) for o in outcomes] == [(False, default)] * 3

    sandbox.faults.set(provider, Fault(error_rate=0.0))
    assert all(send(provider, sandbox).ok for _ in range(3))
    stats = sandbox.inbox.stats()[provider]
    assert (stats["calls"], stats["accepted"], stats["faulted"]) == (6, 3, 3)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_error_rate_half_fails_some(sandbox: Sandbox, provider: str) -> None:
    sandbox.faults.set(provider, Fault(error_rate=0.5, status=503 if provider != "smtp" else 452))
    outcomes = [send(provider, sandbox) for _ in range(24)]
    failed = sum(not o.ok for o in outcomes)
    assert 1 <= failed <= 23  # P(all or none) = 2 * 2**-24
    assert sandbox.inbox.stats()[provider]["faulted"] == failed


@pytest.mark.parametrize("provider", PROVIDERS)
def test_latency_delays_but_delivers(sandbox: Sandbox, provider: str) -> None:
    sandbox.faults.set(provider, Fault(latency_ms=300))
    started = time.monotonic()
    assert send(provider, sandbox).ok
    assert time.monotonic() - started >= 0.3
    assert len(sandbox.inbox.messages(provider)) == 1


def test_a_fault_on_one_provider_leaves_the_others_alone(sandbox: Sandbox) -> None:
    sandbox.faults.set("sendgrid", Fault(outage=True))
    assert not send("sendgrid", sandbox).ok
    assert all(send(p, sandbox).ok for p in ("mailgun", "ses", "smtp"))


def test_sendgrid_body_attachments_are_base64_decoded(sandbox: Sandbox) -> None:
    mail = sendgrid_mail()
    mail.attachment = Attachment(
        file_content=base64.b64encode(b"\x00\xffbinary").decode(),
        file_name="blob.bin",
        file_type="application/octet-stream",
    )
    sendgrid_client(sandbox).send(mail)
    (message,) = sandbox.inbox.messages("sendgrid")
    assert ("blob.bin", "application/octet-stream", b"\x00\xffbinary") in message.attachments
