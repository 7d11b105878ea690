"""SendGrid's Signed Event Webhook: each event applied once, every bad post refused with a 4xx
and nothing changed; a batch's personalizations each map back to their own job."""

from __future__ import annotations

import time

import pytest

from delivery.models import DeliveryEvent, EmailJob, Suppression
from delivery.sending import jobs_send
from delivery.webhooks.events import unmatched_count
from tests.delivery.jobs import new_job
from tests.delivery.webhooks.conftest import snapshot
from tests.delivery.webhooks.posting import (
    OTHER_BASIC,
    WRONG_KEY,
    post_sendgrid,
    sendgrid_event,
)

pytestmark = pytest.mark.django_db
State = EmailJob.DeliveryState


def test_a_signed_event_is_applied_once(client):
    job = new_job(to_email="Guest@Example.com")
    event = sendgrid_event(job, event="bounce", type="bounce", reason="550 no such user")

    response = post_sendgrid(client, [event])

    assert response.status_code == 200
    [stored] = DeliveryEvent.objects.all()
    assert (stored.provider_kind, stored.event_id, stored.job_id) == (
        "sendgrid",
        event["sg_event_id"],
        job.pk,
    )
    assert (stored.kind, stored.outcome, stored.recipient) == (
        "bounced",
        State.BOUNCED_HARD,
        "guest@example.com",
    )
    assert stored.raw["reason"] == "550 no such user"
    job.refresh_from_db()
    assert job.delivery_state == State.BOUNCED_HARD
    assert Suppression.objects.get().address == "guest@example.com"

    before = snapshot()
    again = post_sendgrid(client, [event])  # SendGrid redelivers, newly signed

    assert again.status_code == 200
    assert snapshot() == before


def test_the_rotation_s_second_secret_is_accepted_too(client):
    job = new_job()
    response = post_sendgrid(client, [sendgrid_event(job)], auth_pair=OTHER_BASIC)
    assert response.status_code == 200
    job.refresh_from_db()
    assert job.delivery_state == State.DELIVERED


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param({"age": 602}, id="stale timestamp"),
        pytest.param({"age": -602}, id="timestamp from the future"),
        pytest.param({"key": WRONG_KEY}, id="wrong signature"),
        pytest.param(
            {"tamper": lambda body: body.replace(b'"bounce"', b'"delivered"', 1)},
            id="body tampered after signing",
        ),
        pytest.param({"auth_pair": None}, id="no basic auth"),
        pytest.param({"auth_pair": ("hooks", "guess")}, id="wrong basic auth"),
    ],
)
def test_a_bad_post_is_refused_and_changes_nothing(client, bad):
    job = new_job()
    before = snapshot()
    if "age" in bad:
        bad = {"at": time.time() - bad["age"]}

    response = post_sendgrid(client, [sendgrid_event(job, event="bounce", type="bounce")], **bad)

    assert 400 <= response.status_code < 500
    assert snapshot() == before


def test_a_malformed_body_is_refused(client):
    """Correctly signed, but not SendGrid's format."""
    before = snapshot()
    for events in (b"{not json", b"\xff\xfe", "not a list", {"a": 1}, [["x"]]):
        response = post_sendgrid(client, events)
        assert 400 <= response.status_code < 500, events
    assert snapshot() == before


def test_odd_but_well_formed_values_are_stored_not_a_500(client):
    job = new_job()
    odd = [
        sendgrid_event(job, reason="nul \u0000 inside", sg_event_id="id\u0000x"),
        sendgrid_event(None, email="x" * 400 + "@example.com", extra={"deep": [1, {"a": None}]}),
        {**sendgrid_event(None), "gpmas_job": ["not", "an", "id"]},
        {**sendgrid_event(None), "gpmas_job": "9" * 40},
    ]

    response = post_sendgrid(client, odd)

    assert response.status_code == 200
    assert DeliveryEvent.objects.count() == 4
    assert DeliveryEvent.objects.get(job=job).raw["reason"] == "nul  inside"


def test_an_unconfigured_webhook_refuses_everything(client, settings):
    settings.ANYMAIL = {**settings.ANYMAIL, "SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY": ""}
    job = new_job()
    before = snapshot()
    assert post_sendgrid(client, [sendgrid_event(job)]).status_code == 403
    assert snapshot() == before


def test_an_event_for_no_known_job_is_stored_and_counted_not_applied(client):
    job = new_job(to_email="someone@example.com")
    strangers = [
        sendgrid_event(None, email="stranger@example.com"),
        # our job's id, but another address: not that job's event
        {**sendgrid_event(job, email="other@example.com")},
        {**sendgrid_event(None, email="x@example.com"), "gpmas_job": "999999999"},
    ]

    assert post_sendgrid(client, strangers).status_code == 200

    assert DeliveryEvent.objects.filter(job__isnull=True).count() == 3
    assert unmatched_count() == 3
    job.refresh_from_db()
    assert job.delivery_state == State.NONE


def test_a_bounce_or_complaint_for_no_job_of_ours_suppresses_nobody(client):
    """Another app on the same account, or a forged body: stored and counted, nothing else."""
    job = new_job(to_email="someone@example.com")
    waiting = new_job(to_email="stranger@example.com")
    strangers = [
        sendgrid_event(None, event="bounce", email="stranger@example.com"),
        # our job's id, but another address
        sendgrid_event(job, event="spamreport", email="other@example.com"),
        {**sendgrid_event(None, event="bounce", email="x@example.com"), "gpmas_job": "\u00b2"},
    ]

    assert post_sendgrid(client, strangers).status_code == 200

    assert unmatched_count() == 3
    assert not Suppression.objects.exists()
    waiting.refresh_from_db()
    assert waiting.status == EmailJob.Status.QUEUED


def test_a_batch_s_personalizations_bounce_each_to_its_own_job(client, sendgrid, clean_sandbox):
    jobs = [new_job(to_email=f"batch{n}@example.com", subject=f"S{n}") for n in range(3)]
    assert jobs_send(job_ids=[job.pk for job in jobs]) == dict.fromkeys(
        [job.pk for job in jobs], EmailJob.Status.SENT
    )
    assert clean_sandbox.inbox.stats()["sendgrid"]["calls"] == 1  # one batch call
    # What SendGrid echoes in each personalization's events: its custom_args.
    echoed = {m.to[0]: m.metadata for m in clean_sandbox.inbox.messages("sendgrid")}
    kinds = [("bounce", "bounce"), ("bounce", "blocked"), ("delivered", None)]
    events = []
    for job, (event, bounce_type) in zip(jobs, kinds, strict=True):
        fields = {"type": bounce_type} if bounce_type else {}
        event = sendgrid_event(None, event=event, email=job.to_email, **fields)
        events.append({**event, **echoed[job.to_email]})

    assert post_sendgrid(client, events).status_code == 200

    states = [EmailJob.objects.get(pk=job.pk).delivery_state for job in jobs]
    assert states == [State.BOUNCED_HARD, State.BOUNCED_SOFT, State.DELIVERED]
    assert list(DeliveryEvent.objects.order_by("job_id").values_list("job_id", flat=True)) == [
        job.pk for job in jobs
    ]


def test_only_the_tracking_webhooks_are_mounted(client):
    for url in (
        "/webhooks/sendgrid/inbound/",
        "/webhooks/mailgun/inbound/",
        "/webhooks/amazon_ses/inbound/",
        "/webhooks/postmark/tracking/",
    ):
        assert client.post(url, data=b"{}", content_type="application/json").status_code == 404
    assert client.head("/webhooks/sendgrid/tracking/").status_code == 200  # providers probe it
    assert client.get("/webhooks/sendgrid/tracking/").status_code == 405
