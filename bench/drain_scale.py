"""Benchmark 8, past one machine (issue #15, item 3): the drain's dispatch rate against the send
rate of worker processes in a latency world.

1. Dispatch rate: N due jobs in the outbox (written while halted), then ``drain_now()`` (what
   beat and the nudges run) called in this process until every job is published, with no
   worker consuming. Counted: job ids published per second, SQL statements and Redis round
   trips (every command or pipeline sent, to the broker and to the project's keys) per id.
2. Send rate at 1, 2, 4 and 8 worker processes (prefork, a pool of one each, beat draining as
   deployed) to the sandbox's SMTP sink with 50 ms per message (no batch API: the calls in
   flight decide), ``--drain-sends`` messages per worker process; and one worker process to
   SendGrid at 150 ms per call, where jobs share calls (the highest rate one process reaches).
3. Beat-paced: 20,000 jobs, two workers, beat, SendGrid without latency: whether the periodic
   drain (at most ``GPMAS_DRAIN_LIMIT`` ids per ``GPMAS_DRAIN_INTERVAL_SECONDS``) paces sending.

The broker is a Redis server of the run's own (embedded redis-server), so its connections and
command counts are this run's alone; the project's keys stay on the shared Redis.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from urllib.parse import urlsplit

from bench.fanout import FROM_EMAIL, _only_provider, draft
from bench.processes import start_beat, start_workers
from bench.stack import SCRATCH, configure_sandbox_providers, sandbox_reset, wait_until

ENQUEUE_CHUNK = 10_000
WORKER_COUNTS = (1, 2, 4, 8)
SMTP_MS, SENDGRID_MS = 50, 150
PACED_JOBS = 20_000


def run(jobs: int = 100_000, sends: int = 500) -> dict:
    broker = _own_broker()
    try:
        configure_sandbox_providers()
        drain = dispatch_rate(jobs)
        smtp = [send_rate("sandbox-smtp", SMTP_MS, n, sends * n) for n in WORKER_COUNTS]
        sendgrid = send_rate("sandbox-sendgrid", SENDGRID_MS, 1, max(2_000, sends * 8))
        paced = beat_paced(PACED_JOBS)
    finally:
        broker.stop()
    result = {
        "dispatch": drain,
        "smtp_curve": smtp,
        "sendgrid_one_worker": sendgrid,
        "beat_paced": paced,
    }
    print_tables(result)
    return result


def _own_broker():
    from django.conf import settings

    from gpmas.celery import app
    from gpmas.embedded_redis import EmbeddedRedis

    embedded = EmbeddedRedis(SCRATCH / "broker", appendonly=False).start()
    os.environ["CELERY_BROKER_URL"] = embedded.url  # the workers started later
    settings.CELERY_BROKER_URL = app.conf.broker_url = embedded.url
    return embedded


def write_queue(count: int, provider: str) -> float:
    """``count`` jobs queued while halted, for ``provider`` alone; the seconds it took."""
    from delivery.models import EmailJob
    from delivery.services import EmailDraft, email_enqueue
    from reliability.halt import system_halt

    EmailJob.objects.all().delete()
    _only_provider(provider)
    sandbox_reset()
    system_halt(reason="benchmark: writing the queue", source="bench")
    started = time.perf_counter()
    for start in range(0, count, ENQUEUE_CHUNK):
        email_enqueue(
            EmailDraft(kind="test", from_email=FROM_EMAIL, **draft(i))
            for i in range(start, min(count, start + ENQUEUE_CHUNK))
        )
    return time.perf_counter() - started


class RoundTrips:
    """Redis round trips (a command or a whole pipeline sent) from this process, by port."""

    def __init__(self) -> None:
        self.by_port: Counter[int] = Counter()

    def __enter__(self) -> RoundTrips:
        import redis.connection

        self._original = original = redis.connection.Connection.send_packed_command
        by_port = self.by_port

        def counted(connection, command, check_health=True):
            by_port[connection.port] += 1
            return original(connection, command, check_health)

        redis.connection.Connection.send_packed_command = counted
        return self

    def __exit__(self, *exc) -> None:
        import redis.connection

        redis.connection.Connection.send_packed_command = self._original


def dispatch_rate(count: int) -> dict:
    from django.conf import settings
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from delivery.models import EmailJob
    from delivery.tasks import drain_now
    from reliability.halt import system_resume

    write_seconds = write_queue(count, "sandbox-sendgrid")
    print(f"  {count} jobs written in {write_seconds:.1f} s", flush=True)
    system_resume(reason="benchmark: go", source="bench")
    published = passes = 0
    with CaptureQueriesContext(connection) as queries, RoundTrips() as redis_trips:
        started = time.perf_counter()
        while published < count:
            report = drain_now()
            if not report.dispatched:
                raise RuntimeError(f"the drain published nothing: {report.reason}")
            published += report.dispatched
            passes += 1
        seconds = time.perf_counter() - started
    broker_port = int(settings.CELERY_BROKER_URL.rsplit(":", 1)[1].split("/")[0])
    broker_trips = redis_trips.by_port[broker_port]
    project_trips = sum(redis_trips.by_port.values()) - broker_trips
    result = {
        "jobs": count,
        "write_seconds": write_seconds,
        "drain_calls": passes,
        "seconds": seconds,
        "ids_per_second": published / seconds,
        "sql_statements": len(queries),
        "sql_per_id": len(queries) / published,
        "broker_round_trips": broker_trips,
        "project_redis_round_trips": project_trips,
        "redis_per_id": (broker_trips + project_trips) / published,
        "batch_size": settings.GPMAS_DRAIN_BATCH_SIZE,
        "drain_limit": settings.GPMAS_DRAIN_LIMIT,
        "drain_interval_seconds": settings.GPMAS_DRAIN_INTERVAL_SECONDS,
    }
    print(
        f"  one drain: {published} ids in {seconds:.2f} s ({result['ids_per_second']:.0f}/s) "
        f"over {passes} drain calls; per id: {result['sql_per_id']:.4f} SQL statements, "
        f"{result['redis_per_id']:.4f} Redis round trips",
        flush=True,
    )
    EmailJob.objects.all().delete()
    from gpmas.celery import app

    with app.connection_for_write() as broker:
        broker.default_channel.client.flushall()  # the published ids: the run's own broker
    return result


def send_rate(provider: str, latency_ms: int, workers: int, count: int) -> dict:
    """``count`` jobs to ``provider`` at ``latency_ms``, sent by ``workers`` worker processes
    and beat: messages a second from the resume to the last acceptance."""
    from django.db.models import Max

    from delivery.models import EmailJob
    from reliability.halt import system_resume
    from sandbox import config
    from sandbox.client import SandboxClient

    write_queue(count, provider)
    kind = provider.removeprefix("sandbox-")
    SandboxClient(config.load().http_url).set_fault(kind, latency_ms=latency_ms)
    started_workers = start_workers(workers)
    beat = start_beat()
    sent = EmailJob.objects.filter(status=EmailJob.Status.SENT)
    try:
        broker_before = _broker_commands()
        started = time.time()
        system_resume(reason="benchmark: go", source="bench")
        wait_until(
            lambda: sent.count() >= count, timeout=max(300, count), interval=0.25, what="sent"
        )
        last = sent.aggregate(last=Max("finished_at"))["last"].timestamp()
        broker_commands = _broker_commands() - broker_before
        connections = [_connections(worker.popen.pid) for worker in started_workers]
    finally:
        beat.stop()
        for worker in started_workers:
            worker.stop()
        SandboxClient(config.load().http_url).clear_faults(kind)
    seconds = last - started
    result = {
        "provider": kind,
        "latency_ms": latency_ms,
        "workers": workers,
        "messages": count,
        "seconds": seconds,
        "per_second": count / seconds,
        "per_second_per_worker": count / seconds / workers,
        # Every command the broker ran (workers fetching and acknowledging, beat, the drain),
        # a few polls after the last message included.
        "broker_commands_per_message": broker_commands / count,
        # Open TCP connections of each worker (main process and pool), by server.
        "connections_per_worker": connections,
    }
    print(
        f"  {kind} at {latency_ms} ms, {workers} worker process(es): {count} in {seconds:.1f} s "
        f"({result['per_second']:.0f}/s, {result['per_second_per_worker']:.0f}/s per process); "
        f"broker commands/message {result['broker_commands_per_message']:.2f}; "
        f"connections of worker 1: {connections[0]}",
        flush=True,
    )
    EmailJob.objects.all().delete()
    return result


def beat_paced(count: int) -> dict:
    """A backlog deeper than ``GPMAS_DRAIN_LIMIT``, two workers and beat, SendGrid without
    latency: does the periodic drain (a pass of at most the limit per interval) pace sending?
    The sent count is sampled every 0.25 s; the longest time it stood still is the workers
    waiting for the next pass."""
    from delivery.models import EmailJob
    from reliability.halt import system_resume

    write_queue(count, "sandbox-sendgrid")
    started_workers = start_workers(2)
    beat = start_beat()
    sent = EmailJob.objects.filter(status=EmailJob.Status.SENT)
    samples: list[tuple[float, int]] = []
    try:
        started = time.time()
        system_resume(reason="benchmark: go", source="bench")
        while not samples or samples[-1][1] < count:
            time.sleep(0.25)
            samples.append((time.time() - started, sent.count()))
            if samples[-1][0] > max(300, count / 20):
                raise TimeoutError(f"{samples[-1][1]} of {count} sent")
    finally:
        beat.stop()
        for worker in started_workers:
            worker.stop()
    still, last_change = 0.0, None  # from the first message sent on
    for (at, number), (_, before) in zip(samples[1:], samples, strict=False):
        if number != before:
            last_change = at
        elif last_change is not None:
            still = max(still, at - last_change)
    seconds = samples[-1][0]
    print(
        f"  beat-paced: {count} jobs, 2 workers, SendGrid without latency: {seconds:.1f} s "
        f"({count / seconds:.0f}/s); sending stood still for up to {still:.1f} s at a time",
        flush=True,
    )
    EmailJob.objects.all().delete()
    return {
        "jobs": count,
        "seconds": seconds,
        "per_second": count / seconds,
        "longest_still": still,
    }


def _broker_commands() -> int:
    from gpmas.celery import app

    with app.connection_for_write() as broker:
        return broker.default_channel.client.info("stats")["total_commands_processed"]


def _connections(pid: int) -> dict[str, int]:
    """Established TCP connections of a worker (its main process and pool), by server port:
    PostgreSQL, the project's Redis, the broker (the run's own Redis), the provider (sandbox)."""
    import psutil
    from django.conf import settings

    ports = {
        int(settings.DATABASES["default"]["PORT"] or 5432): "postgresql",
        urlsplit(settings.REDIS_URL).port or 6379: "redis",
        urlsplit(settings.CELERY_BROKER_URL).port: "broker",
    }
    main = psutil.Process(pid)
    counts: Counter[str] = Counter()
    for process in [main, *main.children(recursive=True)]:
        for conn in process.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_ESTABLISHED and conn.raddr:
                counts[ports.get(conn.raddr.port, "provider")] += 1
    return dict(counts)


def print_tables(result: dict) -> None:
    drain = result["dispatch"]
    print("\n| workers | SMTP at 50 ms: msg/s | per process | speed-up |")
    print("|---:|---:|---:|---:|")
    base = result["smtp_curve"][0]["per_second"]
    for row in result["smtp_curve"]:
        print(
            f"| {row['workers']} | {row['per_second']:.0f} | {row['per_second_per_worker']:.0f} | "
            f"{row['per_second'] / base:.2f}x |"
        )
    print("\n| one drain | ids/s | SQL / id | Redis round trips / id | drain / one worker |")
    print("|---|---:|---:|---:|---:|")
    for row in (result["smtp_curve"][0], result["sendgrid_one_worker"]):
        print(
            f"| against {row['provider']} at {row['latency_ms']} ms, one worker "
            f"{row['per_second']:.0f}/s | {drain['ids_per_second']:.0f} | "
            f"{drain['sql_per_id']:.4f} | {drain['redis_per_id']:.4f} | "
            f"{drain['ids_per_second'] / row['per_second']:.1f}x |"
        )
