import pytest

from delivery.models import DeliveryEvent, EmailJob, Suppression, SuppressionAudit
from tests.delivery.webhooks.posting import configure


@pytest.fixture(autouse=True)
def _webhook_secrets(settings):
    configure(settings)


def snapshot() -> tuple:
    """Everything a webhook may change: events, job states, suppressions and their audit."""
    jobs = sorted(EmailJob.objects.values_list("pk", "status", "delivery_state"))
    return (
        sorted(DeliveryEvent.objects.values_list("provider_kind", "event_id", "job_id")),
        jobs,
        sorted(Suppression.objects.values_list("address", "reason", "lifted_at")),
        SuppressionAudit.objects.count(),
    )
