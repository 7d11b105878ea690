import pytest

from delivery import connections
from delivery.models import Provider
from tests.delivery.sendpath import only


@pytest.fixture(autouse=True)
def _adapters_closed():
    """Adapters outlive a batch by design (kept per process); close their connections after a
    test."""
    yield
    connections.close_adapters()


@pytest.fixture
def sendgrid(providers) -> Provider:
    return only("sendgrid", daily_quota=1000)


@pytest.fixture
def smtp(providers) -> Provider:
    return only("smtp")


@pytest.fixture
def mailgun(providers) -> Provider:
    return only("mailgun", daily_quota=1000)


@pytest.fixture
def ses(providers) -> Provider:
    return only("ses", daily_quota=1000)
