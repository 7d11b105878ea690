"""Each adapter against its emulator, through the real SDK: success and every error class."""

import email.utils
import json
import smtplib
import time

import pytest

from delivery.message import JOB_HEADER, OutgoingMessage
from delivery.providers import ErrorClass, SendError, build_adapter
from sandbox import Fault

pytestmark = pytest.mark.django_db
KINDS = ["sendgrid", "ses", "mailgun", "smtp"]
ICS = (
    "BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nUID:e1\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


def message(**overrides) -> OutgoingMessage:
    fields = {
        "to_email": "guest@example.com",
        "from_email": "GPMAS <invitations@gpmas.local>",
        "subject": "You're invited",
        "text_body": "Open https://gpmas.example/i/abc to answer.",
        "html_body": "<p>Open <a href='https://gpmas.example/i/abc'>the invitation</a>.</p>",
        "headers": {JOB_HEADER: "4242"},
        "ics": ICS,
    }
    return OutgoingMessage(**{**fields, **overrides})


@pytest.mark.parametrize("kind", KINDS)
def test_adapter_delivers_through_the_real_sdk(providers, clean_sandbox, kind):
    adapter = build_adapter(providers[kind])
    try:
        message_id = adapter.send(message())
    finally:
        adapter.close()
    [captured] = clean_sandbox.inbox.messages(kind)
    assert message_id
    assert captured.to == ["guest@example.com"]
    assert captured.subject == "You're invited"
    assert captured.headers[JOB_HEADER] == "4242"
    assert "https://gpmas.example/i/abc" in captured.text
    assert any("invite.ics" in (name or "") for name, *_ in captured.attachments)


def test_smtp_adapter_reuses_one_connection_for_a_batch(providers, clean_sandbox):
    adapter = build_adapter(providers["smtp"])
    try:
        adapter.send(message(to_email="a@example.com"))
        connection = adapter.connection
        adapter.send(message(to_email="b@example.com"))
        assert adapter.connection is connection
    finally:
        adapter.close()
    assert len(clean_sandbox.inbox.messages("smtp")) == 2


ERROR_TABLE = [
    # docs/providers.md, "Error classes", row by row
    ("sendgrid", Fault(status=500), ErrorClass.TRANSIENT),
    ("sendgrid", Fault(status=503), ErrorClass.TRANSIENT),
    ("sendgrid", Fault(status=429, retry_after=30), ErrorClass.RATE_LIMITED),
    ("sendgrid", Fault(status=401), ErrorClass.PROVIDER_ERROR),
    ("sendgrid", Fault(status=403), ErrorClass.PROVIDER_ERROR),
    ("sendgrid", Fault(status=400), ErrorClass.RECIPIENT_REJECTED),
    ("sendgrid", Fault(status=413), ErrorClass.RECIPIENT_REJECTED),
    ("ses", Fault(status=500), ErrorClass.TRANSIENT),
    ("ses", Fault(status=429, code="TooManyRequestsException"), ErrorClass.TRANSIENT),
    ("ses", Fault(status=400, code="Throttling"), ErrorClass.RATE_LIMITED),
    ("ses", Fault(status=400, code="LimitExceededException"), ErrorClass.RATE_LIMITED),
    ("ses", Fault(status=400, code="SendingPausedException"), ErrorClass.PROVIDER_ERROR),
    ("ses", Fault(status=400, code="AccountSuspendedException"), ErrorClass.PROVIDER_ERROR),
    (
        "ses",
        Fault(status=400, code="MailFromDomainNotVerifiedException"),
        ErrorClass.PROVIDER_ERROR,
    ),
    ("ses", Fault(status=400, code="MessageRejected"), ErrorClass.RECIPIENT_REJECTED),
    ("ses", Fault(status=400, code="BadRequestException"), ErrorClass.RECIPIENT_REJECTED),
    ("mailgun", Fault(status=500), ErrorClass.TRANSIENT),
    ("mailgun", Fault(status=404), ErrorClass.TRANSIENT),
    ("mailgun", Fault(status=429, retry_after=30), ErrorClass.RATE_LIMITED),
    ("mailgun", Fault(status=401), ErrorClass.PROVIDER_ERROR),
    ("mailgun", Fault(status=403), ErrorClass.PROVIDER_ERROR),
    ("mailgun", Fault(status=400), ErrorClass.RECIPIENT_REJECTED),
    ("smtp", Fault(status=451), ErrorClass.TRANSIENT),
    ("smtp", Fault(status=421), ErrorClass.RATE_LIMITED),
    ("smtp", Fault(status=454), ErrorClass.RATE_LIMITED),
    ("smtp", Fault(status=535), ErrorClass.PROVIDER_ERROR),
    ("smtp", Fault(status=550), ErrorClass.RECIPIENT_REJECTED),
    ("smtp", Fault(status=553), ErrorClass.RECIPIENT_REJECTED),
]


@pytest.mark.parametrize(
    ("kind", "fault", "expected"),
    ERROR_TABLE,
    ids=[f"{k}-{f.code or f.status}" for k, f, _ in ERROR_TABLE],
)
def test_adapter_maps_each_provider_error_to_its_class(
    providers, clean_sandbox, kind, fault, expected
):
    clean_sandbox.faults.set(kind, fault)
    adapter = build_adapter(providers[kind])
    try:
        with pytest.raises(SendError) as caught:
            adapter.send(message())
    finally:
        adapter.close()
    assert caught.value.error_class == expected
    assert clean_sandbox.inbox.messages(kind) == []


@pytest.mark.parametrize("kind", ["sendgrid", "mailgun"])
def test_a_429_carries_the_providers_retry_after(providers, clean_sandbox, kind):
    clean_sandbox.faults.set(kind, Fault(status=429, retry_after=40))
    with pytest.raises(SendError) as caught:
        build_adapter(providers[kind]).send(message())
    assert 30 <= caught.value.retry_after <= 41


@pytest.mark.parametrize("kind", KINDS)
def test_a_provider_that_hangs_times_out_as_unknown(providers, clean_sandbox, kind, settings):
    settings.GPMAS_PROVIDER_READ_TIMEOUT = 1.0
    clean_sandbox.faults.set(kind, Fault(hang=True, hang_seconds=5))
    adapter = build_adapter(providers[kind])
    started = time.monotonic()
    try:
        with pytest.raises(SendError) as caught:
            adapter.send(message())
    finally:
        adapter.close()
    assert time.monotonic() - started < 4.5
    # SMTP hangs at DATA, after the message went out; HTTP after the request went out.
    assert caught.value.error_class == ErrorClass.UNKNOWN


@pytest.mark.parametrize("kind", KINDS)
def test_a_provider_in_full_outage_fails_without_a_message(providers, clean_sandbox, kind):
    clean_sandbox.faults.set(kind, Fault(outage=True))
    adapter = build_adapter(providers[kind])
    try:
        with pytest.raises(SendError) as caught:
            adapter.send(message())
    finally:
        adapter.close()
    assert caught.value.error_class in (
        ErrorClass.TRANSIENT,
        ErrorClass.UNKNOWN,
        ErrorClass.RATE_LIMITED,
    )
    assert clean_sandbox.inbox.messages(kind) == []


@pytest.mark.parametrize("kind", KINDS)
def test_an_unreachable_provider_is_transient(providers, kind):
    provider = providers[kind]
    provider.api_base_url = "http://127.0.0.1:9"
    provider.port = 9
    with pytest.raises(SendError) as caught:
        build_adapter(provider).send(message())
    assert caught.value.error_class == ErrorClass.TRANSIENT


def test_wrong_credentials_are_a_provider_error(providers, monkeypatch):
    monkeypatch.setenv("GPMAS_PROVIDER_SANDBOX_SENDGRID_API_KEY", "wrong")
    with pytest.raises(SendError) as caught:
        build_adapter(providers["sendgrid"]).send(message())
    assert caught.value.error_class == ErrorClass.PROVIDER_ERROR


def test_console_adapter_logs_and_accepts(caplog):
    from delivery.models import Provider

    with caplog.at_level("INFO", logger="gpmas.console_provider"):
        message_id = build_adapter(Provider(name="dev", kind="console")).send(message())
    assert message_id.startswith("console-")
    assert "guest@example.com" in caplog.text


def test_ses_refusing_an_unverified_sender_is_a_provider_error_not_the_recipients(
    providers, clean_sandbox
):
    """moto (and SES) answer MessageRejected for an unverified sender: the account's setup is
    at fault, and another provider may deliver the message, so the job must not fail."""
    adapter = build_adapter(providers["ses"])
    unverified = OutgoingMessage(
        to_email="guest@example.com",
        from_email="Someone <someone@unverified.example>",
        subject="Hi",
        text_body="b",
    )
    with pytest.raises(SendError) as caught:
        adapter.send(unverified)
    assert caught.value.code == "MessageRejected"
    assert caught.value.error_class == ErrorClass.PROVIDER_ERROR


def test_an_smtp_relay_refusing_our_sender_is_a_provider_error(providers, monkeypatch):
    from delivery.providers.smtp import SmtpAdapter

    def refuse(connection, sender, recipient, data):
        raise smtplib.SMTPSenderRefused(553, b"5.7.1 sender not allowed", sender)

    monkeypatch.setattr(SmtpAdapter, "_transfer", staticmethod(refuse))
    adapter = build_adapter(providers["smtp"])
    try:
        with pytest.raises(SendError) as caught:
            adapter.send(message())
    finally:
        adapter.close()
    assert (caught.value.code, caught.value.error_class) == ("553", ErrorClass.PROVIDER_ERROR)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", ["Olivia Park via GPMAS", "Zoë Ørsted, PhD via GPMAS"])
def test_every_adapter_carries_the_senders_display_name(providers, clean_sandbox, kind, name):
    """Invitations come from "Olivia Park via GPMAS" (invitations/emails.py, sender)."""
    from email.headerregistry import Address

    adapter = build_adapter(providers[kind])
    sender = str(Address(display_name=name, addr_spec="invitations@gpmas.local"))
    try:
        adapter.send(message(from_email=sender))
    finally:
        adapter.close()
    [captured] = clean_sandbox.inbox.messages(kind)
    assert captured.from_email == "invitations@gpmas.local"
    if kind == "sendgrid":  # a JSON field of its own
        seen = json.loads(captured.raw)["from"].get("name")
    else:  # the From header, decoded (SMTP, SES raw MIME; Mailgun's "from" form field)
        seen = email.utils.parseaddr(captured.header("From"))[0]
    assert seen == name
