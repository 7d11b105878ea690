"""Amazon SES events through SNS (basic auth only: SNS signatures are not verified yet). Each
event applied once, matched by the X-GPMAS-Job header SES echoes or by the SES message id; bad
posts refused with a 4xx; a subscription is never confirmed."""

from __future__ import annotations

import json

import pytest

from delivery.models import DeliveryEvent, EmailJob, Provider
from tests.delivery.jobs import new_job
from tests.delivery.webhooks.conftest import snapshot
from tests.delivery.webhooks.posting import post_ses, ses_notification

pytestmark = pytest.mark.django_db
State = EmailJob.DeliveryState


def test_an_event_is_applied_once(client):
    job = new_job()
    sns = ses_notification(job)

    assert post_ses(client, sns).status_code == 200

    [stored] = DeliveryEvent.objects.all()
    assert (stored.provider_kind, stored.job_id, stored.outcome) == ("ses", job.pk, "delivered")
    assert stored.event_id == f"{sns['MessageId']}:{job.to_email}"
    job.refresh_from_db()
    assert job.delivery_state == State.DELIVERED

    before = snapshot()
    assert post_ses(client, sns).status_code == 200  # SNS retries the same notification
    assert snapshot() == before


def test_a_bounce_matches_its_job_by_the_ses_message_id(client):
    ses = Provider.objects.create(name="ses-test", kind="ses")
    job = new_job(to_email="away@example.com")
    EmailJob.objects.filter(pk=job.pk).update(provider=ses, provider_message_id="0100-abc")
    bounce = {
        "bounceType": "Transient",
        "bounceSubType": "MailboxFull",
        "bouncedRecipients": [{"emailAddress": job.to_email}],
    }
    sns = ses_notification(None, event="Bounce", email=job.to_email, message_id="0100-abc")
    message = json.loads(sns["Message"]) | {"bounce": bounce}
    sns["Message"] = json.dumps(message)

    assert post_ses(client, sns).status_code == 200

    job.refresh_from_db()
    assert job.delivery_state == State.BOUNCED_SOFT


@pytest.mark.parametrize(
    "post",
    [
        pytest.param(lambda c, sns: post_ses(c, sns, auth_pair=None), id="no basic auth"),
        pytest.param(
            lambda c, sns: post_ses(c, sns, auth_pair=("hooks", "nope")), id="wrong basic auth"
        ),
        pytest.param(lambda c, sns: post_ses(c, sns, raw="{not json"), id="malformed body"),
        pytest.param(
            lambda c, sns: post_ses(c, {**sns, "Message": "{bad"}), id="malformed SES event"
        ),
        pytest.param(
            lambda c, sns: post_ses(c, {**sns, "Type": "Surprise"}), id="unknown message type"
        ),
    ],
)
def test_a_bad_post_is_refused_and_changes_nothing(client, post):
    job = new_job()
    before = snapshot()

    response = post(client, ses_notification(job))

    assert 400 <= response.status_code < 500
    assert snapshot() == before


def test_a_subscription_confirmation_is_not_confirmed(client, monkeypatch):
    def no_calls(*args, **kwargs):
        raise AssertionError("no call to AWS")

    monkeypatch.setattr("boto3.session.Session.client", no_calls)
    sns = {
        "Type": "SubscriptionConfirmation",
        "MessageId": "c-1",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:gpmas-events",
        "SubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription",
        "Token": "t",
    }
    before = snapshot()
    assert post_ses(client, sns).status_code == 200
    assert snapshot() == before
