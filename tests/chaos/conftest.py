import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sandbox import Fault, Sandbox
from sandbox.faults import PROVIDERS
from tests.chaos import checker, provider_events
from tests.chaos.harness import SCALE, Stack, append_report, settle
from tests.chaos.watches import CallLog


@pytest.fixture
def start_stack(tmp_path: Path, providers, clean_sandbox) -> Iterator[Callable[..., Stack]]:
    """Start a scenario's stack (after ``providers``, whose secrets the processes inherit). With
    ``GPMAS_CHAOS_PROVIDER_EVENTS`` set, the emulated providers report what they accept."""
    stacks: list[Stack] = []

    def start(scenario: str, **options) -> Stack:
        env = {**provider_events.stack_env(), **options.pop("env", {})}
        stack = Stack(tmp_path / scenario, scenario, env=env, **options)
        stacks.append(stack)
        return stack.__enter__()

    with contextlib.ExitStack() as running:
        if provider_events.DELAY:
            delay = float(provider_events.DELAY)
            running.enter_context(provider_events.ProviderEvents(clean_sandbox, delay))
        yield start
        for stack in stacks:
            stack.__exit__()


@pytest.fixture
def call_log(clean_sandbox) -> Iterator[CallLog]:
    with CallLog(clean_sandbox) as log:
        yield log


def slow_providers(emulators: Sandbox, latency_ms: int = 40) -> None:
    """A little latency on every provider, so a fault lands while calls are in flight."""
    for kind in PROVIDERS:
        emulators.faults.set(kind, Fault(latency_ms=latency_ms))


def finish(
    scenario: str,
    job_ids: list[int],
    emulators: Sandbox,
    *,
    fault_start: float,
    fault_end: float,
    timeout: float = 60,
    **measures,
) -> checker.Report:
    """Wait for the jobs to settle, measure, print and (on request) record the report."""
    deadline = settle(job_ids, emulators, timeout=timeout * SCALE)
    result = checker.report(
        scenario,
        checker.snapshot(job_ids, emulators),
        deadline=deadline,
        now=time.time(),
        fault_start=fault_start,
        fault_end=fault_end,
        **measures,
    )
    append_report(result.to_dict())
    print("\n" + checker.MARKDOWN_HEADER + "\n" + result.markdown_row())
    return result


def assert_targets(result: checker.Report) -> None:
    """The targets every scenario must meet (docs/invariants.md)."""
    assert result.lost == 0, result.statuses
    assert result.stuck == 0, result.statuses
    assert result.unexplained_duplicates == 0, result.duplicates
    assert result.overbookings == 0
    assert result.double_acceptances == 0
    assert not result.calls_while_halted
    assert not result.calls_while_open
