"""The SES emulator's SendBulkEmail (sandbox/ses_bulk.py), through boto3's sesv2 client: every
entry rendered into a message of its own and captured like a SendEmail copy, SES's checks on the
call, per-entry rejections, and faults and latency applied per call."""

from __future__ import annotations

import json
import threading
import time

import pytest
from botocore.exceptions import ClientError

from sandbox import Fault, Sandbox
from sandbox.webhook_keys import WebhookKeys
from tests.sandbox.recording_site import Site

from .helpers import SENDER, ses_client, ses_raw

KEYS = WebhookKeys.generate()
TEMPLATE = {"Subject": "{{subject}}", "Text": "{{text}}", "Html": "{{html}}"}


def entry(to: str, n: int, **values: str) -> dict:
    data = {
        "subject": f"Invitation {n} ☕",
        "text": f"Open https://gpmas.local/i/{n}",
        "html": f"<p><a href='https://gpmas.local/i/{n}'>Open</a></p>",
        **values,
    }
    return {
        "Destination": {"ToAddresses": [to]},
        "ReplacementEmailContent": {
            "ReplacementTemplate": {"ReplacementTemplateData": json.dumps(data)}
        },
        "ReplacementHeaders": [
            {"Name": "X-GPMAS-Job", "Value": str(n)},
            {"Name": "List-Unsubscribe", "Value": f"<https://gpmas.local/u/{n}>"},
        ],
    }


def bulk(client, entries: list[dict], *, sender: str = SENDER, template=None) -> dict:
    return client.send_bulk_email(
        FromEmailAddress=f"GPMAS <{sender}>",
        DefaultContent={
            "Template": {"TemplateContent": template or TEMPLATE, "TemplateData": "{}"}
        },
        BulkEmailEntries=entries,
    )


def test_each_entry_becomes_a_message_of_its_own(sandbox: Sandbox) -> None:
    answer = bulk(ses_client(sandbox), [entry(f"g{n}@example.org", n) for n in range(3)])

    results = answer["BulkEmailEntryResults"]
    assert [r["Status"] for r in results] == ["SUCCESS"] * 3
    assert len({r["MessageId"] for r in results}) == 3
    stats = sandbox.inbox.stats()["ses"]
    assert (stats["calls"], stats["accepted"], stats["messages"]) == (1, 1, 3)
    for n, result in enumerate(results):
        [copy] = sandbox.inbox.messages("ses", job=str(n))
        assert copy.to == [f"g{n}@example.org"]
        assert copy.from_email == SENDER
        assert copy.subject == f"Invitation {n} ☕"
        assert copy.text.strip() == f"Open https://gpmas.local/i/{n}"
        assert copy.html.strip() == f"<p><a href='https://gpmas.local/i/{n}'>Open</a></p>"
        assert copy.header("List-Unsubscribe") == f"<https://gpmas.local/u/{n}>"
        assert copy.provider_message_id == result["MessageId"]
        assert copy.header("To") == f"g{n}@example.org"


def test_a_value_is_inserted_as_is_never_rendered_again(sandbox: Sandbox) -> None:
    bulk(ses_client(sandbox), [entry("a@example.org", 1, text="Literal {{html}} here")])

    [copy] = sandbox.inbox.messages("ses")
    assert copy.text.strip() == "Literal {{html}} here"


def test_an_entry_ses_rejects_fails_alone(sandbox: Sandbox) -> None:
    entries = [entry("a@example.org", 1), entry("rejected@example.org", 2), entry("b@x.org", 3)]
    results = bulk(ses_client(sandbox), entries)["BulkEmailEntryResults"]

    assert [r["Status"] for r in results] == ["SUCCESS", "MESSAGE_REJECTED", "SUCCESS"]
    assert "MessageId" not in results[1] and results[1]["Error"]
    assert sorted(m.job for m in sandbox.inbox.messages("ses")) == ["1", "3"]


def test_a_missing_value_is_accepted_and_never_delivered(sandbox: Sandbox) -> None:
    template = {"Subject": "{{subject}}", "Text": "{{name}}"}
    [result] = bulk(ses_client(sandbox), [entry("a@example.org", 1)], template=template)[
        "BulkEmailEntryResults"
    ]

    assert result["Status"] == "SUCCESS"  # SES reports a rendering failure only later
    assert sandbox.inbox.messages("ses") == []


@pytest.mark.parametrize(
    ("call", "code"),
    [
        ({"entries": 51}, "BadRequestException"),
        ({"template": {"TemplateName": "stored"}}, "NotFoundException"),
        ({"template": {"TemplateData": "{}"}}, "BadRequestException"),
        ({"data": "not json"}, "BadRequestException"),
        ({"header": {"Name": "X-Bad", "Value": "ünïcode"}}, "BadRequestException"),
        ({"sender": "someone@unverified.test"}, "MessageRejected"),
    ],
    ids=["51 entries", "stored template", "no content", "bad data", "bad header", "unverified"],
)
def test_the_call_is_refused_as_ses_refuses_it(sandbox: Sandbox, call, code) -> None:
    entries = [entry(f"g{n}@example.org", n) for n in range(call.get("entries", 2))]
    if "data" in call:
        entries[0]["ReplacementEmailContent"]["ReplacementTemplate"]["ReplacementTemplateData"] = (
            call["data"]
        )
    if "header" in call:
        entries[0]["ReplacementHeaders"].append(call["header"])
    client = ses_client(sandbox)
    with pytest.raises(ClientError) as caught:
        client.send_bulk_email(
            FromEmailAddress=call.get("sender", SENDER),
            DefaultContent={"Template": call.get("template", {"TemplateContent": TEMPLATE})},
            BulkEmailEntries=entries,
        )

    assert caught.value.response["Error"]["Code"] == code
    if code == "MessageRejected":
        assert "not verified" in caught.value.response["Error"]["Message"]
    stats = sandbox.inbox.stats()["ses"]
    assert (stats["calls"], stats["rejected"], stats["faulted"], stats["messages"]) == (1, 1, 0, 0)


def test_a_fault_fails_the_whole_call(sandbox: Sandbox) -> None:
    sandbox.faults.set("ses", Fault(code="Throttling"))
    with pytest.raises(ClientError) as caught:
        bulk(ses_client(sandbox), [entry("a@example.org", 1), entry("b@example.org", 2)])

    assert caught.value.response["Error"]["Code"] == "Throttling"
    stats = sandbox.inbox.stats()["ses"]
    assert (stats["calls"], stats["faulted"], stats["messages"]) == (1, 1, 0)


def test_latency_is_per_call_and_concurrent_calls_wait_side_by_side(sandbox: Sandbox) -> None:
    clients = [ses_client(sandbox) for _ in range(6)]
    bulk(clients[0], [entry("warm@example.org", 0)])  # the first call sets moto up
    sandbox.inbox.clear()
    sandbox.faults.set("ses", Fault(latency_ms=300))
    start = threading.Barrier(len(clients) + 1)
    took: list[float] = []

    def call(client, n: int) -> None:
        start.wait()
        began = time.monotonic()
        bulk(client, [entry(f"g{n}-{i}@example.org", i) for i in range(5)])
        took.append(time.monotonic() - began)

    threads = [threading.Thread(target=call, args=(c, n)) for n, c in enumerate(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.monotonic()
    for thread in threads:
        thread.join(10)
    elapsed = time.monotonic() - began

    assert len(took) == 6 and min(took) >= 0.3  # 5 entries, one latency each call
    # One after another: 6 x 0.3 s; side by side, one latency plus the work, with room for a
    # loaded machine (as tests/sandbox/test_sandbox_latency.py).
    assert elapsed < 6 * 0.3 / 2
    assert sandbox.inbox.stats()["ses"]["messages"] == 30


def test_send_email_to_a_rejected_mailbox_is_rejected_too(sandbox: Sandbox) -> None:
    client = ses_client(sandbox)
    with pytest.raises(client.exceptions.MessageRejected) as caught:
        ses_raw(client, "rejected@example.org")

    assert "rejection list" in caught.value.response["Error"]["Message"]
    assert sandbox.inbox.messages("ses") == []


def test_each_bulk_recipient_gets_its_own_ses_events(sandbox: Sandbox) -> None:
    """The SNS notifications the sandbox posts for a bulk call: one set per entry, each with that
    entry's own headers (its job) and SES message id, as the site correlates them."""
    site = Site()
    sandbox.send_events_to(site.url, secret="sandbox:secret", keys=KEYS, delay=0)
    try:
        entries = [entry("guest@example.org", 1), entry("bounce@example.org", 2)]
        results = bulk(ses_client(sandbox), entries)["BulkEmailEntryResults"]

        assert sandbox.webhooks.wait_for(lambda posted: len(posted) == 2, timeout=15)
    finally:
        sandbox.stop_events()
        site.close()
    events = {}
    for path, _, body in site.posts:
        assert path == "/webhooks/amazon_ses/tracking/"
        event = json.loads(json.loads(body)["Message"])
        headers = {h["name"]: h["value"] for h in event["mail"]["headers"]}
        events[headers["X-GPMAS-Job"]] = (event["eventType"], event["mail"]["messageId"])
    assert events == {
        "1": ("Delivery", results[0]["MessageId"]),
        "2": ("Bounce", results[1]["MessageId"]),
    }
