"""The SendGrid emulator through the real SendGrid SDK: what it captures, its error answers, and
what each fault does to the SDK (statuses, 429, hangs, outages)."""

from __future__ import annotations

import base64
import http.client
import json
import time

import pytest
import python_http_client.exceptions as sg_errors
from sendgrid.helpers.mail import Attachment, CustomArg

from sandbox import Fault, Sandbox

from .helpers import ICS, SENDER, sendgrid_client, sendgrid_mail


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


def test_sendgrid_outage_drops_the_connection(sandbox: Sandbox) -> None:
    sandbox.faults.set("sendgrid", Fault(outage=True))
    with pytest.raises(http.client.RemoteDisconnected):
        sendgrid_client(sandbox).send(sendgrid_mail())
    assert sandbox.inbox.stats()["sendgrid"]["calls"] == 1


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
