"""Sandbox tests: one Sandbox per module, in threads of the test process; no database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox import Sandbox


@pytest.fixture(autouse=True)
def _own_redis_keys_are_cleared() -> Iterator[None]:
    # Overrides the suite-wide autouse fixture: these tests touch no Redis and need no Django
    # settings (they also run with ``-p no:django``).
    yield


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh_sandbox(request: pytest.FixtureRequest) -> Iterator[None]:
    if "sandbox" not in request.fixturenames:
        yield
        return
    running: Sandbox = request.getfixturevalue("sandbox")
    running.faults.clear()
    running.inbox.clear()
    yield
    running.faults.clear()
