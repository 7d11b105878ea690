"""Chaos scenarios 6 and 7: providers failing in three different ways at once, and the halt
switch thrown in the middle of a stream (docs/invariants.md)."""

from __future__ import annotations

import time

import pytest

from delivery.models import EmailJob
from reliability import halt
from sandbox import Fault
from tests.chaos.conftest import assert_targets, finish, slow_providers
from tests.chaos.harness import SCALE, enqueue_jobs, scaled
from tests.chaos.watches import CircuitWatch
from tests.processes import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.chaos, pytest.mark.django_db(transaction=True)]


def sent(job_ids: list[int]) -> int:
    return EmailJob.objects.filter(pk__in=job_ids, status="sent").count()


def test_provider_outage_errors_and_rate_limits_then_recovery_lose_nothing(
    start_stack, clean_sandbox, providers, call_log
):
    stack = start_stack("provider-faults")
    clean_sandbox.faults.set("sendgrid", Fault(outage=True))  # connection closed, no answer
    clean_sandbox.faults.set("ses", Fault(status=500, error_rate=0.3))
    clean_sandbox.faults.set("mailgun", Fault(status=429, retry_after=2))
    clean_sandbox.faults.set("smtp", Fault(latency_ms=20))  # the one healthy provider
    with CircuitWatch(stack.redis_client(), providers["sendgrid"].pk) as sendgrid_circuit:
        fault_start = time.time()
        # A steady stream through the faults: a wave of jobs every second for the fault's
        # length, long enough for SendGrid's circuit to open (and, in the long form, to go
        # half-open, fail its probe and open for longer).
        job_ids: list[int] = []
        for wave in range(int(6 * SCALE)):
            job_ids += enqueue_jobs(35, label=f"wave{wave}-")
            stack.nudge()
            time.sleep(1)
        clean_sandbox.faults.clear()  # every provider recovers
        fault_end = time.time()
        result = finish(
            "6 provider outage + 30% 5xx + 429, then recovery",
            job_ids,
            clean_sandbox,
            fault_start=fault_start,
            fault_end=fault_end,
            open_windows=sendgrid_circuit.open_windows(),
            open_provider="sendgrid",
            emulator_calls=list(call_log.calls),
            sendgrid_circuit_opened=len(sendgrid_circuit.open_windows()),
            calls=clean_sandbox.inbox.stats(),
        )
    assert sendgrid_circuit.open_windows(), "SendGrid's circuit never opened"
    assert_targets(result)
    assert result.statuses == {"sent": len(job_ids)}


def test_halt_during_a_stream_then_resume_calls_nobody_and_sends_everything(
    start_stack, clean_sandbox, call_log
):
    slow_providers(clean_sandbox, 30)
    stack = start_stack("halt")
    job_ids = enqueue_jobs(scaled(200))
    stack.nudge()
    wait_for(lambda: sent(job_ids) >= 20, timeout=30, message="the stream to flow")
    halt.system_halt(reason="chaos: halt under load", source="chaos")  # committed on return
    halted_at = time.time()
    # While halted, drains keep being published (beat every second, and extra nudges).
    for _ in range(int(3 * SCALE)):
        stack.nudge()
        time.sleep(1)
    waiting = EmailJob.objects.filter(pk__in=job_ids, status__in=["queued", "retrying"]).count()
    halt.system_resume(source="chaos")  # the stack's beat drains within a second
    resumed_at = time.time()
    stack.nudge()
    result = finish(
        "7 halt during load, resume",
        job_ids,
        clean_sandbox,
        fault_start=halted_at,
        fault_end=resumed_at,
        halted=[(halted_at, resumed_at)],
        emulator_calls=list(call_log.calls),
        waiting_at_resume=waiting,
    )
    assert waiting > 0, "the halt came too late to leave jobs waiting"
    assert_targets(result)
    assert result.statuses == {"sent": len(job_ids)}
