"""Chaos scenarios 1-5 and 8: processes of the stack killed, its Redis killed, its database
connections dropped, a writer dead between commit and publish, drains and schedulers doubled.

Each scenario writes a batch of jobs, attacks the stack while they are sent, lets it recover,
then checks docs/invariants.md, "Every job is terminal, due or leased", from the database and
the emulators' capture (tests/chaos/checker.py).
"""

from __future__ import annotations

import contextlib
import random
import subprocess
import sys
import time

import pytest

from delivery.models import EmailJob
from tests.chaos.conftest import assert_targets, finish, slow_providers
from tests.chaos.crash_after_commit import CRASHED
from tests.chaos.harness import SCALE, enqueue_jobs, jobs_settled, repeatedly, scaled
from tests.processes import ROOT, process_environment, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.chaos, pytest.mark.django_db(transaction=True)]


def sent(job_ids: list[int]) -> int:
    return EmailJob.objects.filter(pk__in=job_ids, status="sent").count()


def flowing_stream(start_stack, emulators, name: str, *, jobs: int = 150, **stack_options):
    """Start a scenario's stack and a stream of jobs through slowed providers; return once mail
    flows, with the time the fault begins."""
    slow_providers(emulators)
    stack = start_stack(name, **stack_options)
    job_ids = enqueue_jobs(scaled(jobs))
    stack.nudge()
    wait_for(lambda: sent(job_ids) >= 5, timeout=30, message="the stream to flow")
    return stack, job_ids, time.time()


def test_pool_children_killed_mid_send_again_and_again_lose_nothing(start_stack, clean_sandbox):
    # Enough jobs for several kills: with calls in flight 150 jobs drain in under a second.
    stack, job_ids, fault_start = flowing_stream(start_stack, clean_sandbox, "kill-child", jobs=600)

    def kill_one_child() -> None:
        with contextlib.suppress(AssertionError, ProcessLookupError):  # pool between children
            random.choice(stack.workers).kill_child()

    def all_settled() -> bool:
        return jobs_settled(job_ids, due_after=time.time())

    # SIGKILL a pool process every half second for as long as jobs are still open (bounded).
    attack = repeatedly(kill_one_child, every=0.5, limit=15 * SCALE, until=all_settled)
    with attack as kills, contextlib.suppress(AssertionError):  # the loop's limit ends it
        wait_for(all_settled, timeout=15 * SCALE, interval=0.5, message="the kill loop")
    fault_end = kills[-1] if kills else fault_start
    result = finish(
        "1 kill -9 pool child, repeatedly",
        job_ids,
        clean_sandbox,
        fault_start=fault_start,
        fault_end=fault_end,
        kills=len(kills),
    )
    assert kills, "no pool process was killed"
    assert_targets(result)


def test_a_worker_main_process_killed_and_started_again_loses_nothing(start_stack, clean_sandbox):
    stack, job_ids, fault_start = flowing_stream(start_stack, clean_sandbox, "kill-main")
    rounds = max(1, int(SCALE))
    for round_ in range(rounds):
        index = round_ % 2
        stack.workers[index].kill()  # the machine lost the worker: main process and pool
        time.sleep(1)
        stack.restart_worker(index)
    fault_end = time.time()
    result = finish(
        "2 kill -9 worker main, restart",
        job_ids,
        clean_sandbox,
        fault_start=fault_start,
        fault_end=fault_end,
        restarts=rounds,
    )
    assert_targets(result)


@pytest.mark.parametrize("appendonly", [True, False], ids=["aof", "no-aof"])
def test_redis_killed_and_restarted_loses_nothing(start_stack, clean_sandbox, appendonly):
    stack, job_ids, fault_start = flowing_stream(
        start_stack,
        clean_sandbox,
        f"redis-{'aof' if appendonly else 'noaof'}",
        appendonly=appendonly,
    )
    for _ in range(max(1, int(SCALE // 4))):
        stack.redis.kill()  # kill -9: broker, locks and provider state gone at once
        time.sleep(3)
        stack.redis.start()  # same port and directory: with AOF, the log is replayed
        time.sleep(2)
    fault_end = time.time()
    result = finish(
        f"3 kill -9 Redis ({'AOF' if appendonly else 'no AOF'})",
        job_ids,
        clean_sandbox,
        fault_start=fault_start,
        fault_end=fault_end,
        timeout=90,
    )
    assert_targets(result)


def test_database_connections_dropped_under_load_lose_nothing(start_stack, clean_sandbox):
    stack, job_ids, fault_start = flowing_stream(start_stack, clean_sandbox, "pg-terminate")
    terminated: list[int] = []

    def drop_connections() -> None:
        terminated.append(stack.terminate_worker_connections())

    # Only backends of this stack's workers (database and application_name both match).
    with repeatedly(drop_connections, every=0.5, limit=8 * SCALE, until=lambda: False):
        time.sleep(8 * SCALE)
    fault_end = time.time()
    result = finish(
        "4 pg_terminate_backend on workers",
        job_ids,
        clean_sandbox,
        fault_start=fault_start,
        fault_end=fault_end,
        connections_terminated=sum(terminated),
    )
    assert sum(terminated) > 0, "no worker connection was dropped"
    assert_targets(result)


def test_a_writer_dying_between_commit_and_publish_loses_nothing(start_stack, clean_sandbox):
    stack = start_stack("crash-after-commit")
    env = process_environment(**stack.process_env)
    batches, per_batch = max(2, int(2 * SCALE)), 60
    fault_start = time.time()
    for batch in range(batches):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.chaos.crash_after_commit",
                f"crash{batch}-",
                str(per_batch),
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == CRASHED, done.stderr[-2000:]
    fault_end = time.time()
    job_ids = list(EmailJob.objects.filter(topic__startswith="crash").values_list("id", flat=True))
    assert len(job_ids) == batches * per_batch  # committed, although the writer died
    # No nudge was published: only beat's periodic drain can find them.
    result = finish(
        "5 crash between commit and publish",
        job_ids,
        clean_sandbox,
        fault_start=fault_start,
        fault_end=fault_end,
    )
    assert_targets(result)
    assert result.statuses == {"sent": len(job_ids)}


def test_two_schedulers_and_concurrent_drains_send_each_job_once(start_stack, clean_sandbox):
    slow_providers(clean_sandbox, 20)
    stack = start_stack("double-drain")
    stack.add_beat()  # a second scheduler, as a botched deploy would leave running
    fault_start = time.time()
    job_ids = enqueue_jobs(scaled(200))
    # On top of two beats' ticks, drains published five times a second: several drains race.
    with repeatedly(
        stack.nudge,
        every=0.2,
        limit=30 * SCALE,
        until=lambda: jobs_settled(job_ids, due_after=time.time()),
    ):
        wait_for(
            lambda: jobs_settled(job_ids, due_after=time.time()),
            timeout=30 * SCALE,
            interval=0.5,
            message="every job sent",
        )
    fault_end = time.time()
    result = finish(
        "8 two beats + concurrent drains",
        job_ids,
        clean_sandbox,
        fault_start=fault_start,
        fault_end=fault_end,
    )
    assert_targets(result)
    assert result.duplicates == []  # nothing crashed here: not even an explained duplicate
    assert result.statuses == {"sent": len(job_ids)}
    attempts = set(EmailJob.objects.filter(pk__in=job_ids).values_list("attempts", flat=True))
    assert attempts == {1}
