"""The Mailgun emulator through the real Mailgun SDK: form, multipart, batch and MIME sends
captured, its error answers, and what the faults do to the SDK."""

from __future__ import annotations

import json

import pytest
from mailgun.handlers.error_handler import ApiError, MailgunTimeoutError

from sandbox import Fault, Sandbox

from .helpers import ICS, SENDER, mailgun_client, mailgun_send, mime_message


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


def test_a_fault_for_one_mailgun_domain_holds_for_that_domain_alone(sandbox: Sandbox) -> None:
    sandbox.faults.set("mailgun:slow.example.com", Fault(status=503))
    with mailgun_client(sandbox) as client:
        slowed = client.messages.create(
            domain="slow.example.com",
            data={"from": SENDER, "to": "ann@example.org", "subject": "S", "text": "b"},
        )
        other = client.messages.create(
            domain="example.com",
            data={"from": SENDER, "to": "bob@example.org", "subject": "S", "text": "b"},
        )
    assert (slowed.status_code, other.status_code) == (503, 200)
    assert [m.to for m in sandbox.inbox.messages("mailgun")] == [["bob@example.org"]]
    with pytest.raises(ValueError, match="unknown provider 'pigeon:x'"):
        sandbox.faults.set("pigeon:x", Fault(status=503))
