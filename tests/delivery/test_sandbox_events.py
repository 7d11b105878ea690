"""The sandbox's delivery events (sandbox/webhook_events.py) as the site takes them: each event
the emulators would post for a copy they accepted, through the site's real webhook view and its
real checks (basic auth, SendGrid's ECDSA, Mailgun's HMAC, the SNS signature against the
certificate the running sandbox serves). Every copy is sent by the real send path through the
emulator, so the correlation is the one the product writes. The poster thread itself is tested
in tests/sandbox/test_sandbox_webhook_poster.py."""

from __future__ import annotations

import time

import pytest

from delivery.models import DeliveryEvent, EmailJob, Suppression
from delivery.webhooks import sns
from sandbox.webhook_events import Signing, build, outcomes
from sandbox.webhook_keys import SNS_CERT_PATH
from tests.delivery.jobs import new_job, send_one
from tests.delivery.sandbox_site import KEYS, SECRET, configure_site, deliver
from tests.delivery.sendpath import only
from tests.delivery.webhooks.conftest import snapshot

pytestmark = pytest.mark.django_db
State = EmailJob.DeliveryState
EXPECTED = {
    "guest": State.DELIVERED,
    "bounce": State.BOUNCED_HARD,
    "complaint": State.COMPLAINED,
    "softbounce": State.BOUNCED_SOFT,
}


@pytest.fixture
def site(clean_sandbox, settings):
    """The sandbox serves its SNS certificate (its events are configured, but held back an
    hour: these tests post them themselves); the site trusts the sandbox's keys."""
    clean_sandbox.send_events_to("http://127.0.0.1:9", secret=SECRET, keys=KEYS, delay=3600)
    configure_site(settings, clean_sandbox.http_url)
    yield clean_sandbox
    clean_sandbox.stop_events()
    sns._certificate.cache_clear()


def signing(sandbox, fault=None) -> Signing:
    return Signing(KEYS, sandbox.http_url + SNS_CERT_PATH, fault)


def sent_through(kind: str, address: str, sandbox):
    """A job sent by the real send path through ``kind``'s emulator, and the copy it kept."""
    only(kind)
    job = new_job(to_email=address)
    assert send_one(job) == EmailJob.Status.SENT
    [copy] = sandbox.inbox.messages(kind, job=str(job.pk))
    return job, copy


@pytest.mark.parametrize("local", sorted(EXPECTED))
@pytest.mark.parametrize("kind", ["sendgrid", "mailgun", "ses"])
def test_each_event_reaches_its_job(client, providers, site, kind, local):
    job, copy = sent_through(kind, f"{local}@sandbox.test", site)

    for event in outcomes(copy.to[0]):
        post = build(kind, copy, event, signing(site), time.time())
        assert deliver(client, post).status_code == 200

    job.refresh_from_db()
    expected = EXPECTED[local]
    if kind == "mailgun" and local == "softbounce":
        expected = State.DEFERRED  # Mailgun's temporary failure: anymail reads it as deferred
    assert job.delivery_state == expected
    stored = DeliveryEvent.objects.filter(job=job)
    assert stored.count() == len(outcomes(copy.to[0]))
    suppressed = Suppression.objects.filter(address=job.to_email).exists()
    assert suppressed == (local in ("bounce", "complaint"))


@pytest.mark.parametrize("kind", ["sendgrid", "mailgun", "ses"])
def test_a_batch_call_maps_each_copy_to_its_own_job(client, providers, site, kind):
    """One call (SendGrid personalizations, Mailgun recipient-variables, SES SendBulkEmail
    entries), each copy's events back to its own job."""
    from delivery.sending import jobs_send

    only(kind, daily_quota=100)
    jobs = [new_job(to_email=f"{local}@sandbox.test") for local in ("guest", "bounce")]
    jobs_send(job_ids=[job.pk for job in jobs])
    assert site.inbox.stats()[kind]["calls"] == 1
    for copy in site.inbox.messages(kind):
        for event in outcomes(copy.to[0]):
            assert deliver(client, build(kind, copy, event, signing(site), time.time()))

    states = {job.to_email: EmailJob.objects.get(pk=job.pk).delivery_state for job in jobs}
    assert states == {"guest@sandbox.test": State.DELIVERED, "bounce@sandbox.test": "bounced_hard"}


@pytest.mark.parametrize(
    ("kind", "fault"),
    [
        ("sendgrid", "stale"),
        ("mailgun", "stale"),
        ("ses", "stale"),
        ("sendgrid", "bad_signature"),
        ("mailgun", "bad_signature"),
        ("ses", "bad_signature"),
    ],
)
def test_a_faulted_event_is_refused_and_changes_nothing(client, providers, site, kind, fault):
    job, copy = sent_through(kind, "bounce@sandbox.test", site)
    before = snapshot()

    post = build(kind, copy, "bounce", signing(site, fault), time.time())
    assert deliver(client, post).status_code == 400

    assert snapshot() == before
    post = build(kind, copy, "bounce", signing(site), time.time())
    assert deliver(client, post).status_code == 200  # the same event, signed right, is taken
    assert snapshot() != before


def test_a_duplicate_event_changes_nothing(client, providers, site):
    job, copy = sent_through("ses", "bounce@sandbox.test", site)
    post = build("ses", copy, "bounce", signing(site, "duplicate"), time.time())
    assert deliver(client, post).status_code == 200
    before = snapshot()

    assert deliver(client, post).status_code == 200  # SNS redelivering the same notification

    assert snapshot() == before


def test_the_sandbox_certificate_is_trusted_only_in_development(client, providers, site, settings):
    job, copy = sent_through("ses", "bounce@sandbox.test", site)
    settings.DEBUG = False
    before = snapshot()

    assert (
        deliver(client, build("ses", copy, "bounce", signing(site), time.time())).status_code == 400
    )

    assert snapshot() == before


def test_the_sandbox_certificate_url_stops_a_production_start(monkeypatch):
    import importlib

    from gpmas import settings_events
    from gpmas.env import ConfigError

    monkeypatch.setenv("GPMAS_SANDBOX_SNS_CERT_URL", "http://127.0.0.1:8025" + SNS_CERT_PATH)
    monkeypatch.setenv("DEBUG", "0")
    try:
        with pytest.raises(ConfigError, match="GPMAS_SANDBOX_SNS_CERT_URL is for development"):
            importlib.reload(settings_events)
    finally:
        monkeypatch.undo()
        importlib.reload(settings_events)
