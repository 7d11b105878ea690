from types import SimpleNamespace

import pytest

from delivery.models import DeliveryEvent, EmailJob, Suppression, SuppressionAudit, Unsubscribe
from delivery.webhooks import sns
from tests.delivery.webhooks.posting import SNS_CERT, TOPIC, configure


@pytest.fixture(autouse=True)
def _webhook_secrets(settings):
    configure(settings)
    settings.GPMAS_SES_SNS_TOPIC_ARNS = [TOPIC]


@pytest.fixture(autouse=True)
def sns_certificates(monkeypatch) -> SimpleNamespace:
    """ "Fetching" a signing certificate finds ours at any URL, so only the product's own checks
    (which URLs it fetches at all) can refuse one; the URLs fetched are recorded."""
    fake = SimpleNamespace(pem=SNS_CERT, fetched=[])

    def fetch(url: str) -> bytes:
        fake.fetched.append(url)
        return fake.pem

    monkeypatch.setattr(sns, "fetch_pem", fetch)
    sns._certificate.cache_clear()
    yield fake
    sns._certificate.cache_clear()


def snapshot() -> tuple:
    """Everything a webhook may change: events, job states, suppressions and their audit,
    unsubscribes."""
    jobs = sorted(EmailJob.objects.values_list("pk", "status", "delivery_state"))
    return (
        sorted(DeliveryEvent.objects.values_list("provider_kind", "event_id", "job_id")),
        jobs,
        sorted(Suppression.objects.values_list("address", "reason", "lifted_at")),
        SuppressionAudit.objects.count(),
        sorted(Unsubscribe.objects.values_list("organizer_id", "address")),
    )
