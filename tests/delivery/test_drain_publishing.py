"""The drain's publisher (delivery.tasks.drain_now): every batch of one drain goes over one
broker connection, opened only when there is something to publish, failing fast."""

import base64
import json
import time

import kombu
import pytest
import redis
from django.test import override_settings

from delivery import tasks
from delivery.models import EmailJob
from gpmas.celery import app
from tests.delivery.test_drain import make_jobs

# A Redis database no worker listens on, so the published messages stay for the test to read.
QUEUE_DB = 15


@pytest.fixture
def queue(settings, monkeypatch):
    """The default queue's Redis list, in a database of its own."""
    url = settings.REDIS_URL.rsplit("/", 1)[0] + f"/{QUEUE_DB}"
    client = redis.Redis.from_url(url)
    key = f"{settings.REDIS_KEY_PREFIX}:celery:celery"  # the broker's keys carry the prefix
    client.delete(key)
    monkeypatch.setattr(app.conf, "broker_url", url)
    yield client, key
    client.delete(key)


@pytest.fixture
def opened(monkeypatch) -> list:
    """Every broker connection the drain establishes (kombu's ``ensure_connection``)."""
    connections = []
    original = kombu.Connection.ensure_connection

    def counting(connection, *args, **kwargs):
        connections.append(connection)
        return original(connection, *args, **kwargs)

    monkeypatch.setattr(kombu.Connection, "ensure_connection", counting)
    return connections


def published_ids(client: redis.Redis, key: str) -> list[int]:
    ids = []
    for raw in client.lrange(key, 0, -1):
        message = json.loads(raw)
        args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        assert message["headers"]["task"] == "gpmas.delivery.send_jobs"
        ids.extend(args[0])
    return ids


@pytest.mark.django_db
@override_settings(GPMAS_DRAIN_BATCH_SIZE=20)
def test_one_drain_publishes_all_its_batches_over_one_broker_connection(queue, opened):
    client, key = queue
    ids = make_jobs(45)
    report = tasks.drain_now()
    assert report.dispatched == 45
    assert client.llen(key) == 3  # batches of 20, 20 and 5
    assert sorted(published_ids(client, key)) == ids
    assert len(opened) == 1


@pytest.mark.django_db
def test_with_nothing_due_the_drain_does_not_touch_the_broker(monkeypatch, opened):
    monkeypatch.setattr(app.conf, "broker_url", "redis://127.0.0.1:1/0")  # nothing listens
    report = tasks.drain_now()
    assert (report.ran, report.dispatched, report.reason) == (True, 0, "")
    assert opened == []


@pytest.mark.django_db
def test_with_the_broker_down_the_drain_fails_fast_and_leaves_the_jobs_due(monkeypatch):
    ids = make_jobs(3)
    monkeypatch.setattr(app.conf, "broker_url", "redis://127.0.0.1:1/0")
    started = time.monotonic()
    report = tasks.drain_now()
    assert time.monotonic() - started < 5  # one connection try, no retries
    assert (report.dispatched, report.reason) == (0, "broker unavailable")
    waiting = EmailJob.objects.filter(dispatched_at__isnull=True).values_list("id", flat=True)
    assert sorted(waiting) == ids
