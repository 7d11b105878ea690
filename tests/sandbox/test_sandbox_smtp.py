"""The SMTP sink through smtplib: the authentication mechanisms, a wrong password, and what the
faults do to an SMTP session (statuses at DATA, 421, 535, outages, hangs)."""

from __future__ import annotations

import smtplib

import pytest

from sandbox import Fault, Sandbox

from .helpers import ICS, mime_message, smtp_send


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
