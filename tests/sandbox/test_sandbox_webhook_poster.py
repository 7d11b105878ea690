"""The sandbox's webhook poster (sandbox/webhooks.py): events scheduled without blocking the
emulator, posted when due with basic auth, retried while the site is down and then dropped, a
refusal not retried, the ``duplicate`` fault posting the same event twice, SMTP posting nothing.
A small HTTP server of the test stands in for the site (what the site makes of the events is
tests/delivery/test_sandbox_events.py)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator

import pytest
import requests

from sandbox import Fault, Sandbox, webhooks
from sandbox.inbox import CapturedMessage
from sandbox.webhook_keys import SNS_CERT_PATH, WebhookKeys
from sandbox.webhooks import WebhookPoster, WebhookTarget
from tests.processes import free_ports
from tests.sandbox.recording_site import Site

KEYS = WebhookKeys.generate()
SECRET = "sandbox:poster-secret"


@pytest.fixture
def site() -> Iterator[Site]:
    running = Site()
    yield running
    running.close()


@pytest.fixture
def poster(monkeypatch) -> Iterator[WebhookPoster]:
    monkeypatch.setattr(webhooks, "BACKOFF_SECONDS", 0.05)
    running = WebhookPoster()
    running.start()
    yield running
    running.stop()


def target(url: str, delay: float = 0.05) -> WebhookTarget:
    return WebhookTarget(url, SECRET, KEYS, "http://127.0.0.1:1" + SNS_CERT_PATH, delay)


def copy(to: str) -> CapturedMessage:
    return CapturedMessage("sendgrid", [to], provider_message_id="m1", metadata={"gpmas_job": "7"})


def test_events_are_posted_when_due_with_basic_auth(poster, site):
    poster.configure(target(site.url))
    started = time.monotonic()
    poster.accepted("sendgrid", [copy("complaint@sandbox.test")], None)
    assert time.monotonic() - started < 0.05  # scheduled, not posted, in the caller's thread

    assert poster.wait_for(lambda results: len(results) == 2, timeout=10)
    events = [json.loads(body)[0] for _, _, body in site.posts]
    assert [e["event"] for e in events] == ["delivered", "spamreport"]  # delivered first
    assert all(e["gpmas_job"] == "7" for e in events)
    path, headers, _ = site.posts[0]
    assert path == "/webhooks/sendgrid/tracking/"
    assert headers["Authorization"] == "Basic " + base64.b64encode(SECRET.encode()).decode()
    assert [r.status for r in poster.recent()] == [200, 200]


def test_a_site_that_is_down_is_retried_then_the_event_dropped(poster):
    [closed] = free_ports(1)
    poster.configure(target(f"http://127.0.0.1:{closed}"))
    poster.accepted("mailgun", [copy("guest@sandbox.test")], None)

    assert poster.wait_for(lambda results: len(results) == 1, timeout=10)
    [result] = poster.recent()
    assert (result.status, result.attempts) == (0, webhooks.RETRIES + 1)
    assert poster.pending() == 0


def test_a_5xx_is_retried_and_a_refusal_is_not(poster, site):
    poster.configure(target(site.url))
    site.status = 503
    poster.accepted("sendgrid", [copy("guest@sandbox.test")], None)
    assert poster.wait_for(lambda results: len(results) == 1, timeout=10)
    assert len(site.posts) == webhooks.RETRIES + 1
    # The retries carry the same event (same id), as a provider redelivers it.
    assert len({body for _, _, body in site.posts}) == 1

    site.posts.clear()
    site.status = 400
    poster.accepted("sendgrid", [copy("guest@sandbox.test")], "bad_signature")
    assert poster.wait_for(lambda results: len(results) == 2, timeout=10)
    assert len(site.posts) == 1 and poster.recent()[-1].status == 400


def test_the_duplicate_fault_posts_the_same_event_twice(poster, site):
    poster.configure(target(site.url))
    poster.accepted("ses", [copy("guest@sandbox.test")], "duplicate")

    assert poster.wait_for(lambda results: len(results) == 2, timeout=10)
    first, second = (body for _, _, body in site.posts)
    assert first == second


def test_smtp_and_an_unconfigured_poster_post_nothing(poster, site):
    poster.accepted("sendgrid", [copy("guest@sandbox.test")], None)  # no site yet
    poster.configure(target(site.url))
    poster.accepted("smtp", [copy("guest@sandbox.test")], None)
    assert poster.pending() == 0 and site.posts == []


def test_the_emulator_answers_while_the_site_stalls(sandbox: Sandbox, site):
    """A SendGrid call through the emulator returns at once though the site takes 1.5 s per
    event; the event arrives later, with the fault form's choice applied."""
    site.stall = 1.5
    sandbox.send_events_to(site.url, secret=SECRET, keys=KEYS, delay=0)
    sandbox.faults.set("sendgrid", Fault(webhook="stale"))
    try:
        body = {
            "personalizations": [{"to": [{"email": "guest@sandbox.test"}]}],
            "from": {"email": "a@example.com"},
            "subject": "s",
            "content": [{"type": "text/plain", "value": "t"}],
        }
        started = time.monotonic()
        answer = requests.post(
            f"{sandbox.http_url}/v3/mail/send",
            json=body,
            headers={"Authorization": f"Bearer {sandbox.api_key}"},
            timeout=10,
        )
        assert answer.status_code == 202 and time.monotonic() - started < 1.0
        assert sandbox.webhooks.wait_for(lambda results: len(results) == 1, timeout=15)
        assert sandbox.webhooks.recent()[0].fault == "stale"
        cert = requests.get(sandbox.http_url + SNS_CERT_PATH, timeout=5)
        assert cert.content == KEYS.sns_certificate
        [posted] = requests.get(f"{sandbox.http_url}/api/webhooks", timeout=5).json()
        assert (posted["recipient"], posted["status"], posted["fault"]) == (
            "guest@sandbox.test",
            200,
            "stale",
        )
        page = requests.get(f"{sandbox.http_url}/", timeout=5).text
        assert "Events posted" in page and "guest@sandbox.test" in page
    finally:
        sandbox.stop_events()


def test_the_fault_form_sets_and_refuses_a_webhook_fault(sandbox: Sandbox):
    form = {"provider": "mailgun", "webhook": "bad_signature", "action": "set"}
    requests.post(f"{sandbox.http_url}/faults", data=form, timeout=5)
    assert sandbox.faults.get("mailgun") == Fault(webhook="bad_signature")

    answer = requests.post(
        f"{sandbox.http_url}/faults", data={**form, "webhook": "forged"}, timeout=5
    )
    assert "webhook must be one of duplicate, stale, bad_signature" in answer.text
    assert sandbox.faults.get("mailgun") == Fault(webhook="bad_signature")
    page = requests.get(f"{sandbox.http_url}/", timeout=5).text
    assert '<option value="bad_signature" selected>' in page
