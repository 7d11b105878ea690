from collections.abc import Iterator

import pytest
import redis
from django.conf import settings
from django.test import Client

from delivery.models import Provider
from events.models import OrganizerProfile
from sandbox import Sandbox
from sandbox.providers import configure_sandbox_providers, sandbox_secrets


@pytest.fixture(scope="session")
def redis_client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


def delete_own_keys(client: redis.Redis) -> None:
    """Delete only the keys of this test run (the run's prefix), never anyone else's."""
    for key in client.scan_iter(match=f"*{settings.REDIS_KEY_PREFIX}*", count=1000):
        client.delete(key)


@pytest.fixture(autouse=True)
def _own_redis_keys_are_cleared(redis_client):
    yield
    delete_own_keys(redis_client)


def with_display_name(user, name: str):
    """Organizers name themselves before anything else (events/profile.py)."""
    OrganizerProfile.objects.create(user=user, display_name=name)
    return user


@pytest.fixture
def organizer(django_user_model):
    user = django_user_model.objects.create_user("olivia", "olivia@example.com", "pw-olivia-1")
    return with_display_name(user, "Olivia Park")


@pytest.fixture
def outsider(django_user_model):
    user = django_user_model.objects.create_user("oscar", "oscar@example.com", "pw-oscar-1")
    return with_display_name(user, "Oscar Diaz")


def pytest_collection_modifyitems(config, items):
    """Tests marked ``postgres`` need real row locks and concurrent writers: skip them on SQLite."""
    if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL (set DATABASE_URL); SQLite has no row locks")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


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


# --- The sandbox providers (docs/sandbox.md), one set of emulators for the whole run -----------
@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    """The provider emulators, in threads of the test process, shared by the whole run.

    Any free ports, and the default credentials of sandbox/config.py (``DEFAULTS``, not the
    SANDBOX_* variables: a developer's own settings must not change what the tests see)."""
    with Sandbox() as running:
        yield running


@pytest.fixture
def clean_sandbox(sandbox) -> Iterator[Sandbox]:
    sandbox.faults.clear()
    sandbox.inbox.clear()
    yield sandbox
    sandbox.faults.clear()


@pytest.fixture
def sandbox_env(sandbox, monkeypatch) -> dict[str, str]:
    secrets = sandbox_secrets(
        api_key=sandbox.api_key,
        smtp_username=sandbox.smtp_username,
        smtp_password=sandbox.smtp_password,
    )
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    return secrets


@pytest.fixture
def providers(db, clean_sandbox, sandbox_env) -> dict[str, Provider]:
    """One provider row per emulator, keyed by kind."""
    rows = configure_sandbox_providers(
        http_url=clean_sandbox.http_url,
        smtp_host=clean_sandbox.smtp_host,
        smtp_port=clean_sandbox.smtp_port,
    )
    return {row.kind: row for row in rows}


@pytest.fixture
def providers_in_fixed_order(providers) -> dict[str, Provider]:
    """SendGrid is the only weighted provider; the others are standby, tried by name (mailgun,
    ses, smtp) when it cannot take a message. Makes the order of a send deterministic."""
    Provider.objects.exclude(kind="sendgrid").update(weight=0)
    Provider.objects.filter(kind="sendgrid").update(weight=1)
    return {p.kind: p for p in Provider.objects.all()}
