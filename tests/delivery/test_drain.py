import datetime as dt
import subprocess
import sys
import threading
import time

import pytest
import redis
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from delivery import dispatch
from delivery.models import EmailJob
from delivery.services import EmailDraft, email_enqueue
from reliability import locks
from reliability import redis as project_redis
from reliability.models import SystemControl
from tests.processes import ROOT, process_environment, wait_for


def make_jobs(count: int, **overrides) -> list[int]:
    email_enqueue(
        EmailDraft(
            kind="test", to_email=f"g{i}@example.com", subject="S", text_body="b", **overrides
        )
        for i in range(count)
    )
    return list(EmailJob.objects.order_by("id").values_list("id", flat=True))


class Recorder:
    def __init__(self, fail_after: int | None = None):
        self.batches: list[list[int]] = []
        self.fail_after = fail_after
        self.lock = threading.Lock()

    def __call__(self, job_ids: list[int]) -> None:
        with self.lock:
            if self.fail_after is not None and len(self.batches) >= self.fail_after:
                raise ConnectionError("broker down")
            self.batches.append(list(job_ids))

    @property
    def published(self) -> list[int]:
        return [job_id for batch in self.batches for job_id in batch]


@pytest.mark.django_db
@override_settings(GPMAS_DRAIN_BATCH_SIZE=20)
def test_drain_publishes_due_jobs_in_batches_and_stamps_them():
    ids = make_jobs(45)
    publish = Recorder()
    report = dispatch.outbox_drain(publish=publish)
    assert (report.ran, report.dispatched) == (True, 45)
    assert [len(batch) for batch in publish.batches] == [20, 20, 5]
    assert sorted(publish.published) == ids
    assert not EmailJob.objects.filter(dispatched_at__isnull=True).exists()


@pytest.mark.parametrize(
    ("due", "largest", "size"),
    [
        (1, 250, 100),  # a small invite: batches of 100, spread over processes as before
        (250, 250, 100),
        (1600, 250, 100),  # 16 batches of 100
        (3200, 250, 200),  # more than 16 batches' worth: fuller batches
        (5000, 250, 250),  # a drain's limit: the largest batches
        (45, 20, 20),  # a setting below the smallest batch is the size, whatever is due
    ],
)
def test_a_drain_publishes_larger_batches_only_when_many_jobs_are_due(due, largest, size):
    with override_settings(GPMAS_DRAIN_BATCH_SIZE=largest):
        assert dispatch.batch_size_for(due) == size


@pytest.mark.django_db
def test_a_job_published_recently_is_not_published_again():
    make_jobs(3)
    dispatch.outbox_drain(publish=Recorder())
    again = Recorder()
    dispatch.outbox_drain(publish=again)
    assert again.published == []


@pytest.mark.django_db
def test_a_job_whose_message_was_lost_is_published_again_later():
    [job_id] = make_jobs(1)
    dispatch.outbox_drain(publish=Recorder())  # the message never reaches a worker
    EmailJob.objects.filter(pk=job_id).update(
        dispatched_at=timezone.now() - dt.timedelta(minutes=2)
    )
    again = Recorder()
    dispatch.outbox_drain(publish=again)
    assert again.published == [job_id]


@pytest.mark.django_db
def test_jobs_scheduled_for_later_wait():
    make_jobs(2, not_before=timezone.now() + dt.timedelta(hours=1))
    publish = Recorder()
    dispatch.outbox_drain(publish=publish)
    assert publish.published == []


@pytest.mark.django_db
def test_a_halted_system_publishes_nothing():
    make_jobs(2)
    SystemControl.objects.create(pk=1, halted=True, reason="test")
    publish = Recorder()
    assert dispatch.outbox_drain(publish=publish).reason == "halted"
    assert publish.published == []


@pytest.mark.django_db
@override_settings(GPMAS_DRAIN_BATCH_SIZE=10)
def test_a_broker_failure_leaves_unpublished_jobs_for_the_next_drain():
    ids = make_jobs(30)
    report = dispatch.outbox_drain(publish=Recorder(fail_after=1))
    assert (report.dispatched, report.reason) == (10, "broker unavailable")
    retry = Recorder()
    dispatch.outbox_drain(publish=retry)
    assert sorted(retry.published) == ids[10:]


@pytest.mark.django_db
def test_a_drain_that_finds_the_lock_taken_does_nothing_and_asks_for_a_rerun(redis_client):
    make_jobs(2)
    publish = Recorder()
    with locks.hold(dispatch.DRAIN_LOCK):
        report = dispatch.outbox_drain(publish=publish)
    assert (report.ran, report.reason) == (False, "another drain is running")
    assert publish.published == []
    assert redis_client.exists(project_redis.key("drain", "rerun"))


@pytest.mark.django_db
def test_the_drain_skips_its_tick_when_redis_is_down(settings):
    make_jobs(1)
    project_redis.client.cache_clear()
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    try:
        report = dispatch.outbox_drain(publish=Recorder())
    finally:
        project_redis.client.cache_clear()
    assert (report.ran, report.reason) == (False, "redis unavailable")
    assert EmailJob.objects.get().dispatched_at is None


def drain_in_threads(count: int, publish: Recorder, drain) -> None:
    barrier = threading.Barrier(count)

    def run():
        try:
            barrier.wait()
            drain(publish)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)


@pytest.mark.django_db(transaction=True)
def test_two_drains_at_once_publish_each_job_once():
    ids = make_jobs(300)
    publish = Recorder()
    drain_in_threads(2, publish, lambda p: dispatch.outbox_drain(publish=p))
    assert sorted(publish.published) == ids


@pytest.mark.django_db(transaction=True)
def test_without_the_lock_the_row_locks_still_publish_each_job_once():
    """The Redis lock only cuts contention: bypass it and the database still decides."""
    ids = make_jobs(300)
    publish = Recorder()
    drain_in_threads(4, publish, lambda p: dispatch._drain_once(p))
    assert sorted(publish.published) == ids


def test_redis_errors_are_not_swallowed_by_the_lock_helper(settings):
    project_redis.client.cache_clear()
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    try:
        with pytest.raises(redis.ConnectionError), locks.hold("anything"):
            pass
    finally:
        project_redis.client.cache_clear()


HOLD_THE_DRAIN_LOCK = """
import sys, time, django
django.setup()
from delivery import dispatch
from reliability import locks
with locks.hold(dispatch.DRAIN_LOCK, expire=dispatch.LOCK_EXPIRE_SECONDS):
    print("held", flush=True)
    time.sleep(600)
"""


@pytest.mark.django_db(transaction=True)
def test_a_drain_killed_while_holding_its_lock_holds_back_the_next_drains_briefly():
    """A worker killed in the middle of a drain (kill -9, the machine lost) cannot release the
    lock; it lapses after its expiry. That expiry is short (the holder's renewal thread keeps a
    long drain's lock), so expired leases are reconciled and due jobs published again soon."""
    make_jobs(1)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_THE_DRAIN_LOCK],
        cwd=ROOT,
        env=process_environment(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        busy = dispatch.outbox_drain(publish=Recorder())
        assert busy.reason == "another drain is running"
        holder.kill()
        holder.wait(timeout=10)
        killed_at = time.monotonic()
        publish = Recorder()
        wait_for(
            lambda: dispatch.outbox_drain(publish=publish).ran,
            timeout=30,
            interval=0.5,
            message="a drain after the lock holder was killed",
        )
        waited = time.monotonic() - killed_at
    finally:
        holder.kill()
        holder.wait(timeout=10)
    assert len(publish.published) == 1
    assert waited <= dispatch.LOCK_EXPIRE_SECONDS + 1 <= 12, waited
