import pytest
from django.test import Client

from tests.delivery.conftest import clean_sandbox, providers, sandbox, sandbox_env  # noqa: F401


@pytest.fixture
def organizer_client(organizer) -> Client:
    client = Client()
    client.force_login(organizer)
    return client


@pytest.fixture
def outsider_client(outsider) -> Client:
    client = Client()
    client.force_login(outsider)
    return client
