"""Benchmark 5, soak: N messages through one worker, its resident memory at start, middle, end.

One Celery worker process (prefork, one pool process) with beat draining on its default
interval, as deployed, sends N queued messages to the SendGrid emulator (the SMTP sink keeps a
bounded inbox and would take most of an hour at this size). The worker's resident set (main
process plus pool process) is sampled every second; start is after the first 2 % of messages
(imports and connections done), middle at half, end at the last message.
"""

from __future__ import annotations

import threading
import time

import psutil

from bench.fanout import FROM_EMAIL, _only_provider, draft
from bench.processes import start_beat, start_workers
from bench.stack import configure_sandbox_providers, sandbox_reset, sandbox_stats, wait_until

ENQUEUE_CHUNK = 10_000


def _rss_mib(pid: int) -> float:
    main = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [main, *main.children(recursive=True)]) / 2**20


def run(count: int = 100_000) -> dict:
    from delivery.models import EmailJob

    configure_sandbox_providers()
    write_queue(count)
    elapsed, samples = send_sampled(count)
    result = figures(count, elapsed, samples)
    EmailJob.objects.all().delete()
    return result


def write_queue(count: int) -> None:
    """``count`` messages queued while sending is halted, for the SendGrid emulator alone."""
    from delivery.models import EmailJob
    from delivery.services import EmailDraft, email_enqueue
    from reliability.halt import system_halt

    EmailJob.objects.all().delete()
    _only_provider("sendgrid")
    sandbox_reset()
    system_halt(reason="benchmark: writing the queue", source="bench")
    for start in range(0, count, ENQUEUE_CHUNK):
        email_enqueue(
            EmailDraft(kind="test", from_email=FROM_EMAIL, **draft(i))
            for i in range(start, min(count, start + ENQUEUE_CHUNK))
        )


def send_sampled(count: int) -> tuple[float, list[tuple[int, float]]]:
    """One worker and beat send the queue from the resume on, the worker's RSS sampled every
    second: the seconds it took and the samples."""
    from delivery.models import EmailJob
    from reliability.halt import system_resume

    [worker] = start_workers(1)
    beat = start_beat()
    samples: list[tuple[int, float]] = []  # (messages sent, RSS MiB)
    sent = EmailJob.objects.filter(status=EmailJob.Status.SENT)
    stop = threading.Event()

    def sample() -> None:
        from django.db import connection

        while not stop.wait(1.0):
            samples.append((sent.count(), _rss_mib(worker.popen.pid)))
        connection.close()

    sampler = threading.Thread(target=sample, daemon=True)
    try:
        started = time.time()
        system_resume(reason="benchmark: go", source="bench")
        sampler.start()
        wait_until(
            lambda: sent.count() >= count,
            timeout=count / 20,
            interval=1.0,
            what=f"{count} jobs sent",
        )
        elapsed = time.time() - started
        stop.set()
        sampler.join()
        samples.append((count, _rss_mib(worker.popen.pid)))
    finally:
        stop.set()
        beat.stop()
        worker.stop()
    return elapsed, samples


def figures(count: int, elapsed: float, samples: list[tuple[int, float]]) -> dict:
    """The worker's RSS at start, middle and end, printed and returned with the run's figures."""
    from delivery.models import EmailJob

    def at(fraction: float) -> tuple[int, float]:
        return next(s for s in samples if s[0] >= fraction * count)

    points = {"start": at(0.02), "middle": at(0.5), "end": samples[-1]}
    rss = {name: round(mib, 1) for name, (_, mib) in points.items()}
    growth = rss["end"] - rss["middle"]
    accepted = sandbox_stats()["sendgrid"]["messages"]
    attempts = sum(EmailJob.objects.values_list("attempts", flat=True))
    print(
        f"  {count} messages in {elapsed:.0f} s ({count / elapsed:.0f}/s); worker RSS MiB: "
        f"start {rss['start']}, middle {rss['middle']}, end {rss['end']} "
        f"(middle to end {growth:+.1f}); {accepted} accepted, {attempts} attempts",
        flush=True,
    )
    return {
        "messages": count,
        "seconds": elapsed,
        "per_second": count / elapsed,
        "rss_mib": rss,
        "middle_to_end_mib": growth,
        "samples": samples,
        "accepted": accepted,
        "attempts": attempts,
    }
