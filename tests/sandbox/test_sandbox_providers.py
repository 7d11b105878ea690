"""What every emulator shares, through each provider's real SDK: error rates, latency, a fault on
one provider leaving the others alone, and a call still hanging when the inbox is cleared."""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ReadTimeoutError

from sandbox import PROVIDERS, Fault, Sandbox

from .helpers import send, ses_client, ses_raw


@pytest.mark.parametrize("provider", PROVIDERS)
def test_error_rate_one_and_zero(sandbox: Sandbox, provider: str) -> None:
    sandbox.faults.set(provider, Fault(error_rate=1.0))
    outcomes = [send(provider, sandbox) for _ in range(3)]
    default = 451 if provider == "smtp" else 500
    assert [(o.ok, o.status) for o in outcomes] == [(False, default)] * 3

    sandbox.faults.set(provider, Fault(error_rate=0.0))
    assert all(send(provider, sandbox).ok for _ in range(3))
    stats = sandbox.inbox.stats()[provider]
    assert (stats["calls"], stats["accepted"], stats["faulted"]) == (6, 3, 3)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_error_rate_half_fails_some(sandbox: Sandbox, provider: str) -> None:
    sandbox.faults.set(provider, Fault(error_rate=0.5, status=503 if provider != "smtp" else 452))
    outcomes = [send(provider, sandbox) for _ in range(24)]
    failed = sum(not o.ok for o in outcomes)
    assert 1 <= failed <= 23  # P(all or none) = 2 * 2**-24
    assert sandbox.inbox.stats()[provider]["faulted"] == failed


@pytest.mark.parametrize("provider", PROVIDERS)
def test_latency_delays_but_delivers(sandbox: Sandbox, provider: str) -> None:
    sandbox.faults.set(provider, Fault(latency_ms=300))
    started = time.monotonic()
    assert send(provider, sandbox).ok
    assert time.monotonic() - started >= 0.3
    assert len(sandbox.inbox.messages(provider)) == 1


def test_a_fault_on_one_provider_leaves_the_others_alone(sandbox: Sandbox) -> None:
    sandbox.faults.set("sendgrid", Fault(outage=True))
    assert not send("sendgrid", sandbox).ok
    assert all(send(p, sandbox).ok for p in ("mailgun", "ses", "smtp"))


def test_a_call_still_hanging_at_clear_is_neither_captured_nor_counted(sandbox: Sandbox) -> None:
    sandbox.faults.set("ses", Fault(hang=True, hang_seconds=1.0))
    with pytest.raises(ReadTimeoutError):
        ses_raw(ses_client(sandbox, read_timeout=0.3), job="stale")
    assert sandbox.inbox.wait_for(lambda inbox: inbox.in_flight("ses") == 1, 2)
    sandbox.inbox.clear()  # what a test fixture does between tests

    assert sandbox.inbox.wait_for(lambda inbox: inbox.in_flight() == 0, 5)
    assert sandbox.inbox.messages() == []
    assert sandbox.inbox.stats()["ses"]["calls"] == 0
