"""The outbox with real Celery worker processes, real Redis and the sandbox providers."""

import datetime as dt
from collections import Counter

import pytest
from django.db import connection
from django.utils import timezone

from delivery import dispatch
from delivery.models import EmailJob
from delivery.services import EmailDraft, email_enqueue
from delivery.tasks import drain_now, send_jobs
from sandbox import Fault
from tests.processes import CeleryWorker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)
Status = EmailJob.Status
LEASE = "6"  # seconds; short so a lost worker's job is reconciled within the test


@pytest.fixture
def providers(providers_in_fixed_order):
    return providers_in_fixed_order


@pytest.fixture
def start_worker(tmp_path, providers):
    workers = []

    def start(name: str, concurrency: int = 1) -> CeleryWorker:
        limits = {
            "GPMAS_JOB_LEASE_SECONDS": LEASE,
            "CELERY_TASK_TIME_LIMIT": "5",  # soft limit 4 s: room for a 2 s call and a 1 s batch
            "GPMAS_PROVIDER_CONNECT_TIMEOUT": "1",
            "GPMAS_PROVIDER_READ_TIMEOUT": "1",
        }
        worker = CeleryWorker(name, tmp_path, concurrency=concurrency, **limits)
        workers.append(worker)
        return worker.start()

    yield start
    for worker in workers:
        worker.kill()


def enqueue(count: int) -> list[int]:
    email_enqueue(
        EmailDraft(kind="test", to_email=f"g{i}@example.com", subject=f"#{i}", text_body="b")
        for i in range(count)
    )
    return list(EmailJob.objects.order_by("id").values_list("id", flat=True))


def statuses() -> Counter:
    return Counter(EmailJob.objects.values_list("status", flat=True))


def delivered_job_ids(sandbox) -> Counter:
    return Counter(int(m.headers["X-GPMAS-Job"]) for m in sandbox.inbox.messages())


def test_workers_send_every_job_exactly_once(start_worker, clean_sandbox):
    start_worker("a", concurrency=2)
    ids = enqueue(60)
    drain_now()
    wait_for(lambda: statuses() == {Status.SENT: 60}, timeout=60, message="60 sent")
    assert delivered_job_ids(clean_sandbox) == Counter({job_id: 1 for job_id in ids})


def test_a_redelivered_message_is_a_no_op_for_the_worker(start_worker, clean_sandbox):
    start_worker("a")
    ids = enqueue(5)
    send_jobs.apply_async(args=[ids])
    send_jobs.apply_async(args=[ids])  # the broker hands out the same ids again
    wait_for(lambda: statuses() == {Status.SENT: 5}, timeout=30, message="5 sent")
    wait_for(lambda: clean_sandbox.inbox.in_flight() == 0, timeout=10, message="idle sandbox")
    assert delivered_job_ids(clean_sandbox) == Counter({job_id: 1 for job_id in ids})


def test_a_job_whose_message_was_never_published_is_sent_by_a_later_drain(
    start_worker, clean_sandbox
):
    start_worker("a")
    [job_id] = enqueue(1)
    dispatch.outbox_drain(publish=lambda ids: None)  # stamped, but the message is lost
    assert EmailJob.objects.get(pk=job_id).status == Status.QUEUED
    EmailJob.objects.filter(pk=job_id).update(
        dispatched_at=timezone.now() - dt.timedelta(minutes=2)
    )
    drain_now()
    wait_for(lambda: statuses() == {Status.SENT: 1}, timeout=30, message="the job sent")


@pytest.mark.parametrize("how", ["main process", "pool child"])
def test_a_job_left_sending_by_a_killed_worker_is_reconciled_and_sent(
    start_worker, clean_sandbox, how
):
    # The first provider hangs, then fails: the worker is inside a provider call when killed,
    # and the hung request delivers nothing.
    clean_sandbox.faults.set("sendgrid", Fault(hang=True, hang_seconds=8, status=500))
    worker = start_worker("doomed")
    [job_id] = enqueue(1)
    drain_now()
    wait_for(lambda: clean_sandbox.inbox.in_flight("sendgrid"), timeout=20, message="a call")
    if how == "main process":
        worker.kill()
    else:
        worker.kill_child()
    assert EmailJob.objects.get(pk=job_id).status == Status.SENDING
    clean_sandbox.faults.clear()
    if how == "main process":
        start_worker("rescuer")

    def reconciled_and_sent():
        drain_now()  # reconciles the expired lease, then republishes the job
        return EmailJob.objects.get(pk=job_id).status == Status.SENT

    wait_for(reconciled_and_sent, timeout=40, interval=0.5, message="reconcile and send")
    job = EmailJob.objects.get(pk=job_id)
    assert job.attempts == 2
    assert list(job.attempts_log.order_by("id").values_list("outcome", flat=True)) == [
        "unknown",
        "accepted",
    ]
    wait_for(lambda: clean_sandbox.inbox.in_flight() == 0, timeout=15, message="hang to end")
    assert delivered_job_ids(clean_sandbox) == Counter({job_id: 1})


def test_send_test_reaches_the_inbox_once_per_provider_kind(start_worker, clean_sandbox):
    from django.core.management import call_command

    start_worker("a")
    call_command("gpmas", "send-test", "you@example.com")
    drain_now()
    wait_for(lambda: statuses() == {Status.SENT: 4}, timeout=30, message="4 test emails sent")
    kinds = sorted(m.provider for m in clean_sandbox.inbox.messages())
    assert kinds == ["mailgun", "sendgrid", "ses", "smtp"]


def worker_backends() -> set[int]:
    """Process ids of the other sessions on the test database: the worker's connections."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
        )
        return {pid for (pid,) in cursor.fetchall()}


def enqueue_for_tasks(count: int) -> list[int]:
    """Jobs the drain leaves alone (stamped as just published), for tasks the test sends."""
    ids = enqueue(count)
    EmailJob.objects.filter(pk__in=ids).update(dispatched_at=timezone.now())
    return ids


def send_one_task(job_id: int) -> None:
    send_jobs.apply_async(args=[[job_id]])
    wait_for(
        lambda: EmailJob.objects.get(pk=job_id).status == Status.SENT,
        timeout=30,
        message=f"job {job_id} sent",
    )


@pytest.mark.postgres  # reads PostgreSQL's session list
def test_a_worker_keeps_its_database_connection_from_task_to_task(start_worker, clean_sandbox):
    # Celery's Django fixup closes the connection around every task unless told otherwise;
    # DATABASE_CONN_MAX_AGE is to govern it, as for web requests.
    first, second, third = enqueue_for_tasks(3)
    start_worker("a")
    send_one_task(first)
    after_first = worker_backends()
    assert len(after_first) == 1, "the idle worker still holds one connection"
    send_one_task(second)
    send_one_task(third)
    assert worker_backends() == after_first


@pytest.mark.postgres
def test_a_worker_replaces_a_connection_the_database_dropped_between_tasks(
    start_worker, clean_sandbox
):
    first, second = enqueue_for_tasks(2)
    start_worker("a")
    send_one_task(first)
    [dropped] = worker_backends()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [dropped])
    wait_for(lambda: dropped not in worker_backends(), timeout=10, message="backend gone")
    send_one_task(second)  # checked before reuse (CONN_HEALTH_CHECKS), so reopened at once
    assert EmailJob.objects.get(pk=second).attempts == 1
    assert len(worker_backends() - {dropped}) == 1
