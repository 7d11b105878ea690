"""Amazon SES events through SNS: the SNS signature (versions 1 and 2) against a certificate
from an SNS host only, the topic allow-list, basic auth. Each event applied once, matched by the
X-GPMAS-Job header SES echoes or by the SES message id; bad posts refused with a 4xx and nothing
changed; a subscription confirmed only for an allowed topic."""

from __future__ import annotations

import json
import time

import pytest

from delivery.models import DeliveryEvent, EmailJob, Provider
from tests.delivery.jobs import new_job
from tests.delivery.webhooks.conftest import snapshot
from tests.delivery.webhooks.posting import (
    OTHER_SNS_KEY,
    SNS_KEY,
    TOPIC,
    certificate_pem,
    post_ses,
    ses_notification,
    sign_sns,
    sns_time,
)

pytestmark = pytest.mark.django_db
State = EmailJob.DeliveryState


@pytest.mark.parametrize("version", ["1", "2"])
def test_an_event_is_applied_once(client, version, sns_certificates):
    job = new_job()
    sns = sign_sns(ses_notification(job), version=version)

    assert post_ses(client, sns).status_code == 200

    [stored] = DeliveryEvent.objects.all()
    assert (stored.provider_kind, stored.job_id, stored.outcome) == ("ses", job.pk, "delivered")
    assert stored.event_id == f"{sns['MessageId']}:{job.to_email}"
    job.refresh_from_db()
    assert job.delivery_state == State.DELIVERED

    before = snapshot()
    assert post_ses(client, sns).status_code == 200  # SNS retries the same notification
    assert snapshot() == before
    assert sns_certificates.fetched == [sns["SigningCertURL"]]  # fetched once, then kept


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
        pytest.param(
            lambda c, sns: post_ses(c, {**sns, "Timestamp": sns_time(time.time() - 4201)}),
            id="stale timestamp",
        ),
        pytest.param(
            lambda c, sns: post_ses(c, {**sns, "Timestamp": sns_time(time.time() + 4201)}),
            id="timestamp far ahead",
        ),
        pytest.param(
            lambda c, sns: post_ses(c, {**sns, "Timestamp": "yesterday"}), id="bad timestamp"
        ),
    ],
)
def test_a_bad_post_is_refused_and_changes_nothing(client, post):
    job = new_job()
    before = snapshot()

    response = post(client, ses_notification(job))

    assert 400 <= response.status_code < 500
    assert snapshot() == before


def test_a_notification_sns_still_retries_is_taken(client):
    """SNS retries with the original Timestamp for up to an hour: such a retry is not stale."""
    job = new_job()
    sns = ses_notification(job)
    sns["Timestamp"] = sns_time(time.time() - 3599)
    assert post_ses(client, sns).status_code == 200
    assert DeliveryEvent.objects.filter(job=job).count() == 1


def _tamper_message(sns: dict) -> dict:
    signed = sign_sns(sns)
    return {**signed, "Message": signed["Message"].replace("Delivery", "Bounce", 1)}


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda sns: sign_sns({**sns, "TopicArn": TOPIC + "-x"}), id="wrong topic"),
        pytest.param(lambda sns: sign_sns(sns, key=OTHER_SNS_KEY), id="wrong signature"),
        pytest.param(_tamper_message, id="message tampered after signing"),
        pytest.param(lambda sns: sign_sns(sns, version="3"), id="unknown signature version"),
        pytest.param(lambda sns: {**sns, "Signature": "@@@"}, id="signature not base64"),
        pytest.param(
            lambda sns: sign_sns(
                sns, cert_url="https://sns.us-east-1.amazonaws.com.evil.example/c.pem"
            ),
            id="certificate host not SNS",
        ),
        pytest.param(
            lambda sns: sign_sns(sns, cert_url="http://sns.us-east-1.amazonaws.com/c.pem"),
            id="certificate over plain HTTP",
        ),
        pytest.param(
            lambda sns: sign_sns(
                sns, cert_url="https://evil.example/sns.us-east-1.amazonaws.com.pem"
            ),
            id="SNS host only in the path",
        ),
        pytest.param(
            lambda sns: sign_sns(sns, cert_url="https://user@sns.us-east-1.amazonaws.com/c.pem"),
            id="certificate URL with user info",
        ),
    ],
)
def test_a_forged_notification_is_refused_and_changes_nothing(client, forge, sns_certificates):
    job = new_job()
    before = snapshot()

    response = post_ses(client, forge(ses_notification(job)))

    assert response.status_code == 400
    assert snapshot() == before
    assert all(
        url.startswith("https://sns.us-east-1.amazonaws.com/") for url in sns_certificates.fetched
    )


@pytest.mark.parametrize(
    "cert_url",
    [
        pytest.param("https://sns.us-east-1.amazonaws.com/other.pem", id="not SNS's file name"),
        pytest.param(
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-../x.pem",
            id="not hex",
        ),
        pytest.param(
            "https://sns.us-east-1.amazonaws.com/x/SimpleNotificationService-ab.pem",
            id="in another folder",
        ),
        pytest.param(
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-ab.pem?u=1",
            id="with a query",
        ),
    ],
)
def test_a_certificate_url_of_another_shape_is_not_fetched(client, cert_url, sns_certificates):
    job = new_job()
    before = snapshot()

    assert post_ses(client, sign_sns(ses_notification(job), cert_url=cert_url)).status_code == 400

    assert sns_certificates.fetched == []
    assert snapshot() == before


@pytest.mark.parametrize("auth_pair", [None, ("hooks", "nope")], ids=["no auth", "wrong auth"])
def test_an_unauthenticated_post_fetches_no_certificate(client, auth_pair, sns_certificates):
    """Basic auth is checked first: a stranger cannot make the site fetch certificates."""
    job = new_job()
    before = snapshot()

    response = post_ses(client, ses_notification(job), auth_pair=auth_pair)

    assert response.status_code == 400
    assert sns_certificates.fetched == []
    assert snapshot() == before


def test_an_expired_certificate_is_refused(client, sns_certificates):
    sns_certificates.pem = certificate_pem(SNS_KEY, valid_days=-1)
    job = new_job()
    before = snapshot()
    assert post_ses(client, ses_notification(job)).status_code == 400
    assert snapshot() == before


def confirmation(topic=TOPIC, subscribe_url=None) -> dict:
    return {
        "Type": "SubscriptionConfirmation",
        "MessageId": "c-1",
        "Token": "t0k",
        "TopicArn": topic,
        "Message": "You have chosen to subscribe to the topic.",
        "SubscribeURL": subscribe_url
        or "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=t0k",
        "Timestamp": sns_time(),
    }


@pytest.fixture
def visited(monkeypatch) -> list[str]:
    urls = []

    class Answer:
        def raise_for_status(self):
            pass

    def fake_get(url, **kwargs):
        urls.append(url)
        return Answer()

    monkeypatch.setattr("delivery.webhooks.sns.requests.get", fake_get)
    return urls


def test_a_subscription_to_an_allowed_topic_is_confirmed(client, visited):
    message = confirmation()
    assert post_ses(client, message).status_code == 200
    assert visited == [message["SubscribeURL"]]


@pytest.mark.parametrize(
    "post",
    [
        pytest.param(lambda c: post_ses(c, confirmation(topic=TOPIC + "-x")), id="other topic"),
        pytest.param(lambda c: post_ses(c, confirmation(), auth_pair=None), id="no basic auth"),
        pytest.param(
            lambda c: post_ses(c, sign_sns(confirmation(), key=OTHER_SNS_KEY)), id="bad signature"
        ),
        pytest.param(
            lambda c: post_ses(c, confirmation(subscribe_url="https://evil.example/confirm")),
            id="SubscribeURL not at SNS",
        ),
    ],
)
def test_a_subscription_is_not_confirmed_otherwise(client, visited, post):
    before = snapshot()
    assert 400 <= post(client).status_code < 500
    assert visited == []
    assert snapshot() == before
