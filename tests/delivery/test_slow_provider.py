"""A slow provider does not slow the system (docs/invariants.md, "A slow provider"): real worker
processes, the sandbox, a steady stream of jobs, and Mailgun slowed 75x mid-stream, then fast
again. Its share of the calls must fall below 5 % within 30 s of slowing down and come back to
its weighted share within 2 minutes of being fast again; nothing lost, nothing sent twice."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from django.db import connection
from django.utils import timezone

from delivery.models import DeliveryAttempt, EmailJob, Provider
from delivery.services import EmailDraft, email_enqueue
from delivery.tasks import drain_now
from sandbox import Fault
from tests.processes import CeleryWorker, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]
FAST_MS, SLOW_MS = 20, 1500
JOBS_PER_SECOND = 40
WINDOW_SECONDS = 10  # a share is measured over the calls started in the last 10 s


class Stream:
    """Writes ``JOBS_PER_SECOND`` jobs a second and drains, on a thread, until stopped."""

    def __init__(self) -> None:
        self.written = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Stream:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        try:
            while not self._stop.wait(0.25):
                count = JOBS_PER_SECOND // 4
                email_enqueue(
                    EmailDraft(
                        kind="test",
                        to_email=f"g{self.written + i}@example.com",
                        subject="S",
                        text_body="b",
                    )
                    for i in range(count)
                )
                self.written += count
                drain_now()
        finally:
            connection.close()


def share(provider: Provider) -> float | None:
    """The provider's share of the calls started in the last ``WINDOW_SECONDS``."""
    since = timezone.now() - timezone.timedelta(seconds=WINDOW_SECONDS)
    started = Counter(
        DeliveryAttempt.objects.filter(started_at__gt=since, provider__isnull=False).values_list(
            "provider_id", flat=True
        )
    )
    total = sum(started.values())
    return started[provider.pk] / total if total >= 50 else None


def calls_by_status() -> dict[str, int]:
    """For a failure message: where the stream's jobs are."""
    return dict(Counter(EmailJob.objects.values_list("status", flat=True)))


def share_below(provider: Provider, limit: float):
    return lambda: (value := share(provider)) is not None and value < limit


def share_between(provider: Provider, low: float, high: float):
    return lambda: (value := share(provider)) is not None and low <= value <= high


@pytest.fixture
def mailgun_and_smtp(providers, clean_sandbox):
    """Two providers of equal weight, both answering in 20 ms."""
    Provider.objects.exclude(kind__in=["mailgun", "smtp"]).update(enabled=False)
    Provider.objects.filter(kind__in=["mailgun", "smtp"]).update(weight=1)
    for kind in ("mailgun", "smtp"):
        clean_sandbox.faults.set(kind, Fault(latency_ms=FAST_MS))
    return Provider.objects.get(kind="mailgun"), clean_sandbox


def test_a_provider_slowed_75x_loses_its_share_within_30s_and_gets_it_back_within_2_min(
    tmp_path, mailgun_and_smtp
):
    mailgun, sandbox = mailgun_and_smtp
    worker = CeleryWorker("slow", tmp_path, concurrency=2).start()
    try:
        with Stream() as stream:
            try:  # setting up, not timed by the claim: a loaded machine starts slowly
                # Both share it, though not exactly by the weights: a batch's jobs that drew
                # SMTP beyond the bulkhead's half of the slots go to Mailgun when several start
                # at once (inflight.CallSlots.full_for). The share it had is what must come back.
                wait_for(
                    share_between(mailgun, 0.2, 0.8),
                    timeout=60,
                    interval=1,
                    message="both providers sharing the stream",
                )
                before = share(mailgun)
            except AssertionError as exc:
                raise AssertionError(
                    f"{exc}; mailgun's share {share(mailgun)}, jobs {calls_by_status()}"
                ) from None

            sandbox.faults.set("mailgun", Fault(latency_ms=SLOW_MS))
            slowed = time.monotonic()
            wait_for(
                share_below(mailgun, 0.05),
                timeout=30,
                interval=1,
                message="the slow provider's share to fall below 5 %",
            )
            fell = time.monotonic() - slowed
            time.sleep(WINDOW_SECONDS)  # a whole window later it is still down there
            assert share(mailgun) < 0.05

            sandbox.faults.set("mailgun", Fault(latency_ms=FAST_MS))
            fast_again = time.monotonic()
            wait_for(
                share_between(mailgun, before - 0.15, before + 0.15),
                timeout=120,
                interval=1,
                message=f"the provider's share back within 2 minutes (it had {before:.2f})",
            )
            came_back = time.monotonic() - fast_again
        written = stream.written
        wait_for(
            lambda: EmailJob.objects.filter(status="sent").count() == written,
            timeout=60,
            interval=0.5,
            message="every job sent",
        )
    finally:
        worker.stop()
    print(
        f"\nshare {before:.2f}, under 5 % {fell:.0f} s after slowing,"
        f" back within 0.15 of it {came_back:.0f} s after"
    )
    delivered = Counter(m.headers["X-GPMAS-Job"] for m in sandbox.inbox.messages())
    assert len(delivered) == written and set(delivered.values()) == {1}
    assert set(EmailJob.objects.values_list("attempts", flat=True)) == {1}
