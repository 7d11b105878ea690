"""Mailgun's signed webhooks (HMAC-SHA256 of timestamp + token): each event applied once, every
bad post refused with a 4xx and nothing changed; the job comes back in the v: variables."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from delivery.models import DeliveryEvent, EmailJob, Suppression
from delivery.sending import jobs_send
from tests.delivery.jobs import new_job
from tests.delivery.sendpath import only
from tests.delivery.webhooks.conftest import snapshot
from tests.delivery.webhooks.posting import mailgun_event, post_mailgun

pytestmark = pytest.mark.django_db
State = EmailJob.DeliveryState


def test_a_signed_event_is_applied_once(client):
    job = new_job()
    data = mailgun_event(job, event="complained")

    assert post_mailgun(client, data).status_code == 200

    [stored] = DeliveryEvent.objects.all()
    assert (stored.provider_kind, stored.event_id, stored.job_id, stored.outcome) == (
        "mailgun",
        data["id"],
        job.pk,
        State.COMPLAINED,
    )
    job.refresh_from_db()
    assert job.delivery_state == State.COMPLAINED
    assert Suppression.objects.get().reason == Suppression.Reason.COMPLAINT

    before = snapshot()
    # Mailgun posts the same event again (a new token and signature, the same event id).
    assert post_mailgun(client, data).status_code == 200
    assert snapshot() == before


def test_a_temporary_failure_is_a_deferral_and_a_permanent_one_a_hard_bounce(client):
    deferred, bounced = new_job(), new_job(to_email="gone@example.com")
    post_mailgun(client, mailgun_event(deferred, event="failed", severity="temporary"))
    post_mailgun(client, mailgun_event(bounced, event="failed", severity="permanent"))
    deferred.refresh_from_db()
    bounced.refresh_from_db()
    assert (deferred.delivery_state, bounced.delivery_state) == (
        State.DEFERRED,
        State.BOUNCED_HARD,
    )


def _swap_token(raw: bytes) -> bytes:
    body = json.loads(raw)
    body["signature"]["token"] = "0" * 50
    return json.dumps(body).encode()


def _later_timestamp(raw: bytes) -> bytes:
    body = json.loads(raw)
    body["signature"]["timestamp"] = str(int(body["signature"]["timestamp"]) + 1)
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param({"age": 602}, id="stale timestamp"),
        pytest.param({"age": -602}, id="timestamp from the future"),
        pytest.param({"key": "not-the-signing-key"}, id="wrong signature"),
        pytest.param({"tamper": _swap_token}, id="signed token changed after signing"),
        pytest.param({"tamper": _later_timestamp}, id="signed timestamp changed after signing"),
        pytest.param({"tamper": lambda raw: raw[:-10]}, id="truncated body"),
        pytest.param({"auth_pair": None}, id="no basic auth"),
    ],
)
def test_a_bad_post_is_refused_and_changes_nothing(client, bad):
    job = new_job()
    before = snapshot()
    if "age" in bad:
        bad = {"at": time.time() - bad["age"]}

    response = post_mailgun(client, mailgun_event(job, event="complained"), **bad)

    assert 400 <= response.status_code < 500
    assert snapshot() == before


def test_a_signature_replayed_with_another_event_is_refused(client):
    """Mailgun signs timestamp + token only: a captured signature must not carry a new event."""
    job = new_job()
    stamp, token = time.time(), uuid.uuid4().hex
    assert post_mailgun(client, mailgun_event(job), at=stamp, token=token).status_code == 200
    before = snapshot()

    forged = mailgun_event(job, event="complained")
    response = post_mailgun(client, forged, at=stamp, token=token)

    assert response.status_code == 400
    assert snapshot() == before


def test_a_retried_identical_post_is_answered_200_and_changes_nothing(client):
    """Mailgun retries the same post, token included: it must get 200, or it keeps retrying."""
    job = new_job()
    data, stamp, token = mailgun_event(job), time.time(), uuid.uuid4().hex
    assert post_mailgun(client, data, at=stamp, token=token).status_code == 200
    before = snapshot()

    assert post_mailgun(client, data, at=stamp, token=token).status_code == 200

    assert snapshot() == before


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"timestamp": "inf"}, id="infinite timestamp"),
        pytest.param({"timestamp": "nan"}, id="NaN timestamp"),
        pytest.param({"timestamp": 1e300}, id="timestamp past year 9999"),
        pytest.param({"message": "not an object"}, id="message not an object"),
    ],
)
def test_a_signed_body_of_the_wrong_shape_is_refused_and_changes_nothing(client, change):
    """Signed, so it reaches anymail's parser: whatever that raises is the body's fault."""
    job = new_job()
    before = snapshot()

    response = post_mailgun(client, {**mailgun_event(job), **change})

    assert 400 <= response.status_code < 500
    assert snapshot() == before


@pytest.mark.parametrize(
    "variables",
    [
        pytest.param("gpmas_job=1", id="user-variables not an object"),
        pytest.param({"gpmas_job": "\u00b2"}, id="job id a superscript two (str.isdigit)"),
    ],
)
def test_user_variables_of_the_wrong_shape_do_not_break_the_post(client, variables):
    """Both used to raise inside the write (a 500, retried for hours): ``events.job_for`` now
    reads only a dict and only ASCII digits ("²".isdigit() is true, int() refuses it)."""
    job = new_job()
    before = snapshot()

    response = post_mailgun(client, {**mailgun_event(job), "user-variables": variables})

    assert response.status_code < 500
    if response.status_code == 200:  # kept as an event of no known job: no job is touched
        assert DeliveryEvent.objects.get().job_id is None
        assert snapshot()[1:] == before[1:]
    else:
        assert snapshot() == before


def test_a_body_without_signature_is_refused(client):
    before = snapshot()
    for body in (b"{}", b"[1]", b'{"signature": 5}', b"nonsense"):
        response = client.post(
            "/webhooks/mailgun/tracking/", data=body, content_type="application/json"
        )
        assert 400 <= response.status_code < 500, body
    assert snapshot() == before


def test_a_mailgun_send_carries_its_job_back_in_the_event(client, providers, clean_sandbox):
    only("mailgun")
    job = new_job(to_email="mg@example.com")
    assert jobs_send(job_ids=[job.pk]) == {job.pk: EmailJob.Status.SENT}
    [copy] = clean_sandbox.inbox.messages("mailgun")
    data = {**mailgun_event(None, email=job.to_email), "user-variables": copy.metadata}

    assert post_mailgun(client, data).status_code == 200

    job.refresh_from_db()
    assert job.delivery_state == State.DELIVERED
    assert DeliveryEvent.objects.get().job_id == job.pk


def test_a_mailgun_batch_maps_each_recipient_s_event_to_its_own_job(
    client, providers, clean_sandbox
):
    only("mailgun")
    jobs = [new_job(to_email=f"mgb{n}@example.com", subject=f"S{n}") for n in range(3)]
    assert jobs_send(job_ids=[job.pk for job in jobs]) == dict.fromkeys(
        [job.pk for job in jobs], EmailJob.Status.SENT
    )
    assert clean_sandbox.inbox.stats()["mailgun"]["calls"] == 1  # one batch call
    echoed = {m.to[0]: m.metadata for m in clean_sandbox.inbox.messages("mailgun")}
    outcomes = [("delivered", {}), ("failed", {"severity": "permanent"}), ("complained", {})]

    for job, (event, fields) in zip(jobs, outcomes, strict=True):
        data = {**mailgun_event(None, event=event, email=job.to_email, **fields)}
        data["user-variables"] = echoed[job.to_email]
        assert post_mailgun(client, data).status_code == 200

    states = [EmailJob.objects.get(pk=job.pk).delivery_state for job in jobs]
    assert states == [State.DELIVERED, State.BOUNCED_HARD, State.COMPLAINED]
