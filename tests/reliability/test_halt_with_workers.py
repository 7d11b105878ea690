"""The halt switch against real worker processes sending a steady stream (docs/invariants.md,
"Halt")."""

import datetime as dt
from collections import Counter

import pytest
from django.conf import settings
from django.utils import timezone

from delivery.models import DeliveryAttempt, EmailJob, Provider
from delivery.providers import smtp
from delivery.services import EmailDraft, email_enqueue
from delivery.tasks import drain_now, send_jobs
from reliability import halt
from reliability import redis as project_redis
from sandbox import Fault
from tests.processes import CeleryWorker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)
# Enough that the stream is still flowing when the halt comes, now that Mailgun, SES and SMTP
# calls carry several messages each.
JOBS = 1000
# The worker checks the switch, then starts the call: a halt committed inside that gap (a Redis
# quota reservation, well under a millisecond here) meets a call already on its way.
CHECK_TO_CALL_GAP = dt.timedelta(milliseconds=50)


def calls(sandbox) -> int:
    return sum(stats["calls"] for stats in sandbox.inbox.stats().values())


def broker_idle() -> bool:
    client = project_redis.client()
    prefix = settings.CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"]
    return client.llen(f"{prefix}celery") == 0 and client.hlen(f"{prefix}unacked") == 0


def one_message_per_call_slowly(sandbox) -> None:
    # One message per call: SendGrid's batch calls would send the whole stream before the halt.
    Provider.objects.filter(kind="sendgrid").update(enabled=False)
    for kind in ("ses", "mailgun", "smtp"):
        sandbox.faults.set(kind, Fault(latency_ms=30))


def start_the_stream() -> None:
    """JOBS emails queued and drained; returns once the workers have sent the first 60."""
    email_enqueue(
        EmailDraft(kind="test", to_email=f"g{i}@example.com", subject="S", text_body="b")
        for i in range(JOBS)
    )
    drain_now()
    wait_for(
        lambda: EmailJob.objects.filter(status="sent").count() >= 60,
        timeout=60,
        message="the stream to be flowing",
    )


def test_halt_during_a_stream_stops_every_call_and_resume_sends_everything(
    tmp_path, providers, clean_sandbox
):
    one_message_per_call_slowly(clean_sandbox)
    workers = [CeleryWorker(name, tmp_path, concurrency=2).start() for name in ("a", "b")]
    try:
        start_the_stream()

        halt.system_halt(reason="test incident", source="test")  # committed on return
        halted_at = timezone.now()
        calls_at_halt = calls(clean_sandbox)
        wait_for(
            lambda: not EmailJob.objects.filter(status="sending").exists(),
            timeout=30,
            message="calls in flight to finish",
        )

        # The broker still hands out every queued job id: the workers must refuse them all.
        waiting = list(EmailJob.objects.filter(status="queued").values_list("id", flat=True))
        assert waiting, "the halt came too late to leave jobs waiting"
        send_jobs.apply_async(args=[waiting])
        assert drain_now().reason == "halted"
        wait_for(broker_idle, timeout=30, message="the workers to consume every message")

        # Only calls already in flight may still land: at most every slot of every process,
        # each an SMTP call of up to MESSAGES_PER_CALL messages (the sandbox counts each DATA).
        slots = sum(worker.concurrency for worker in workers) * settings.GPMAS_CALLS_IN_FLIGHT
        assert calls(clean_sandbox) - calls_at_halt <= slots * smtp.MESSAGES_PER_CALL
        late = DeliveryAttempt.objects.filter(started_at__gt=halted_at + CHECK_TO_CALL_GAP)
        assert not late.exists(), (
            halted_at,
            list(
                late.values_list(
                    "job_id", "provider__kind", "outcome", "error_code", "started_at", "duration_ms"
                )
            ),
        )
        assert set(EmailJob.objects.filter(pk__in=waiting).values_list("attempts", flat=True)) == {
            0
        }

        halt.system_resume(source="test")  # the drain runs at once, nudged after commit
        wait_for(
            lambda: EmailJob.objects.filter(status="sent").count() == JOBS,
            timeout=90,
            interval=0.2,
            message="every job sent after resume",
        )
    finally:
        for worker in workers:
            worker.stop()
    assert set(EmailJob.objects.values_list("attempts", flat=True)) == {1}
    delivered = Counter(m.headers["X-GPMAS-Job"] for m in clean_sandbox.inbox.messages())
    assert len(delivered) == JOBS and set(delivered.values()) == {1}
