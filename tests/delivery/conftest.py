from collections.abc import Iterator

import pytest

from delivery.models import Provider
from delivery.sandbox import Sandbox
from delivery.sandbox.providers import configure_sandbox_providers, sandbox_secrets


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    """The provider emulators, in threads of the test process, shared by the whole run."""
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
