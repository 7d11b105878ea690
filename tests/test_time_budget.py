"""Time limits that cannot contradict each other (gpmas/time_budget.py): the batch deadline is
derived from them, and a configuration where a call started in time could still run at the
soft time limit is refused at start-up, naming its variables."""

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gpmas import time_budget
from gpmas.env import ConfigError
from gpmas.time_budget import SendTimes, batch_deadline

ROOT = Path(__file__).resolve().parent.parent
DEFAULTS = SendTimes(
    lease=300,
    time_limit=270,
    soft_time_limit=216,
    visibility_timeout=3600,
    connect_timeout=5,
    read_timeout=20,
    probe_timeout=30,
    latency_ceiling=10,
    calls_in_flight=4,
    batch_size=100,
)


def test_the_defaults_give_a_batch_half_the_lease():
    assert batch_deadline(DEFAULTS) == 150


def test_a_short_soft_limit_brings_the_deadline_forward_to_leave_room_for_the_longest_call():
    times = dataclasses.replace(DEFAULTS, time_limit=50, soft_time_limit=40)
    assert batch_deadline(times) == 40 - (5 + 20) - 1


@pytest.mark.parametrize(
    ("change", "names"),
    [
        ({"time_limit": 300}, ["CELERY_TASK_TIME_LIMIT", "GPMAS_JOB_LEASE_SECONDS"]),
        ({"visibility_timeout": 300}, ["GPMAS_JOB_LEASE_SECONDS", "CELERY_VISIBILITY_TIMEOUT"]),
        (
            # The run: a 40 s lease (time limit 10, soft 8) and a 20 s read timeout.
            {"lease": 40, "time_limit": 10, "soft_time_limit": 8},
            [
                "CELERY_TASK_TIME_LIMIT",
                "GPMAS_PROVIDER_CONNECT_TIMEOUT",
                "GPMAS_PROVIDER_READ_TIMEOUT",
            ],
        ),
        (
            {"probe_timeout": 25},
            ["GPMAS_PROBE_TIMEOUT_SECONDS", "GPMAS_PROVIDER_READ_TIMEOUT"],
        ),
        ({"latency_ceiling": 20}, ["GPMAS_LATENCY_CEILING_SECONDS", "GPMAS_PROVIDER_READ_TIMEOUT"]),
        (
            {"calls_in_flight": 8, "batch_size": 5},
            ["GPMAS_CALLS_IN_FLIGHT", "GPMAS_DRAIN_BATCH_SIZE"],
        ),
    ],
)
def test_each_contradiction_is_refused_naming_its_variables(change, names):
    with pytest.raises(ConfigError) as refused:
        batch_deadline(dataclasses.replace(DEFAULTS, **change))
    message = str(refused.value)
    assert message.startswith("gpmas: configuration error: ")
    assert "\n" not in message
    for name in names:
        assert name in message


def start(**env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("GPMAS_", "CELERY_"))}
    environment.update(DJANGO_SETTINGS_MODULE="gpmas.settings", DEBUG="1", **env)
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_start_up_refuses_a_lease_too_short_for_the_read_timeout_with_one_line():
    refused = start(GPMAS_JOB_LEASE_SECONDS="40")
    assert refused.returncode != 0
    [line] = refused.stderr.strip().splitlines()
    assert line.startswith("gpmas: configuration error: CELERY_TASK_TIME_LIMIT is too short")
    assert "GPMAS_PROVIDER_READ_TIMEOUT" in line


def test_start_up_accepts_the_same_lease_with_timeouts_that_fit():
    accepted = start(
        GPMAS_JOB_LEASE_SECONDS="40",
        GPMAS_PROVIDER_CONNECT_TIMEOUT="2",
        GPMAS_PROVIDER_READ_TIMEOUT="4",
    )
    assert accepted.returncode == 0, accepted.stderr


def test_the_margin_covers_an_smtp_call_of_several_messages():
    # Such a call starts no further message after smtp.CALL_SECONDS, so it may end that much
    # after a single call would; the margin before the soft limit must leave room to record it.
    from delivery.providers.smtp import CALL_SECONDS

    assert CALL_SECONDS <= time_budget.MARGIN_SECONDS / 2
