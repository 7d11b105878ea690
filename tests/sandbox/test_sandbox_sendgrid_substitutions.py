"""The SendGrid emulator's batch features: personalization substitutions and SendGrid's limits
(1,000 personalizations per request, 10,000 bytes of substitutions per personalization)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import python_http_client.exceptions as sg_errors

from sandbox import Sandbox

from .helpers import SENDER, sendgrid_client


def personalization(n: int, **substitutions: str) -> dict[str, Any]:
    return {
        "to": [{"email": f"guest{n}@example.org"}],
        "headers": {"X-GPMAS-Job": str(n)},
        "substitutions": substitutions or {"-name-": f"Guest {n}"},
    }


def batch(personalizations: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "from": {"email": SENDER},
        "subject": "Hello -name-",
        "content": [
            {"type": "text/plain", "value": "Dear -name-, -body-"},
            {"type": "text/html", "value": "<p>Dear <b>-name-</b></p>"},
        ],
        "personalizations": personalizations,
        **extra,
    }


def post(sandbox: Sandbox, body: dict[str, Any]):
    return sendgrid_client(sandbox).client.mail.send.post(request_body=body)


def rejected(sandbox: Sandbox, body: dict[str, Any]) -> list[dict[str, Any]]:
    with pytest.raises(sg_errors.BadRequestsError) as caught:
        post(sandbox, body)
    assert caught.value.status_code == 400
    assert sandbox.inbox.messages() == []
    assert sandbox.inbox.stats()["sendgrid"]["rejected"] == 1
    return json.loads(caught.value.body)["errors"]


def test_each_personalization_gets_its_own_substitutions(sandbox: Sandbox) -> None:
    body = batch(
        [
            personalization(1, **{"-name-": "Ann", "-body-": "see you Friday"}),
            personalization(2, **{"-name-": "Zoë", "-body-": "bis Samstag ☕"}),
            {**personalization(3, **{"-name-": "Bob"}), "subject": "Own -name- subject"},
        ]
    )

    response = post(sandbox, body)

    assert response.status_code == 202
    stats = sandbox.inbox.stats()["sendgrid"]
    assert (stats["calls"], stats["messages"]) == (1, 3)
    copies = {m.job: m for m in sandbox.inbox.messages("sendgrid")}
    assert (copies["1"].to, copies["1"].subject) == (["guest1@example.org"], "Hello Ann")
    assert copies["1"].text == "Dear Ann, see you Friday"
    assert copies["1"].html == "<p>Dear <b>Ann</b></p>"
    assert (copies["2"].subject, copies["2"].text) == ("Hello Zoë", "Dear Zoë, bis Samstag ☕")
    assert copies["2"].html == "<p>Dear <b>Zoë</b></p>"
    # A tag without a substitution stays as it is; a personalization's subject is substituted too.
    assert (copies["3"].subject, copies["3"].text) == ("Own Bob subject", "Dear Bob, -body-")


def test_without_substitutions_the_content_is_left_alone(sandbox: Sandbox) -> None:
    post(sandbox, batch([{"to": [{"email": "a@example.org"}]}]))
    [copy] = sandbox.inbox.messages("sendgrid")
    assert (copy.subject, copy.text) == ("Hello -name-", "Dear -name-, -body-")


def test_1000_personalizations_are_accepted(sandbox: Sandbox) -> None:
    response = post(sandbox, batch([personalization(n) for n in range(1000)]))

    assert response.status_code == 202
    assert sandbox.inbox.stats()["sendgrid"]["messages"] == 1000
    copies = {m.job: m for m in sandbox.inbox.messages("sendgrid")}
    assert copies["999"].subject == "Hello Guest 999"


def test_1001_personalizations_are_a_400(sandbox: Sandbox) -> None:
    errors = rejected(sandbox, batch([personalization(n) for n in range(1001)]))

    [error] = errors
    assert error["field"] == "personalizations"
    assert "1000 personalizations" in error["message"]


def test_10000_bytes_of_substitutions_are_accepted(sandbox: Sandbox) -> None:
    # Keys count too: "-name-" (6 bytes) + "-body-" (6) + 9,988 bytes of values = 10,000.
    at_limit = {"-name-": "é" * 4000, "-body-": "x" * (10_000 - 12 - 8000)}

    response = post(sandbox, batch([personalization(1, **at_limit), personalization(2)]))

    assert response.status_code == 202
    copies = {m.job: m for m in sandbox.inbox.messages("sendgrid")}
    assert copies["1"].text == f"Dear {at_limit['-name-']}, {at_limit['-body-']}"


@pytest.mark.parametrize(
    "too_big",
    [
        {"-name-": "x" * 9_995},  # 10,001 bytes with its key
        {"-name-": "é" * 4_998},  # 5,004 characters with its key, but 10,002 bytes
    ],
    ids=["ascii", "multibyte"],
)
def test_more_than_10000_bytes_of_substitutions_are_a_400(
    sandbox: Sandbox, too_big: dict[str, str]
) -> None:
    body = batch([personalization(0), personalization(1, **too_big)])

    errors = rejected(sandbox, body)

    [error] = errors
    assert error["field"] == "personalizations.1.substitutions"
    assert "10,000 bytes" in error["message"]


def test_substitutions_must_be_strings(sandbox: Sandbox) -> None:
    errors = rejected(sandbox, batch([personalization(0, **{"-name-": 7})]))  # type: ignore[arg-type]
    assert [e["field"] for e in errors] == ["personalizations.0.substitutions"]


def test_every_personalization_with_a_subject_stands_in_for_the_top_level_one(
    sandbox: Sandbox,
) -> None:
    body = batch([{**personalization(n), "subject": f"For -name- ({n})"} for n in range(2)])
    del body["subject"]

    post(sandbox, body)

    assert sorted(m.subject for m in sandbox.inbox.messages("sendgrid")) == [
        "For Guest 0 (0)",
        "For Guest 1 (1)",
    ]
    del body["personalizations"][1]["subject"]
    sandbox.inbox.clear()
    assert [e["field"] for e in rejected(sandbox, body)] == ["subject"]
