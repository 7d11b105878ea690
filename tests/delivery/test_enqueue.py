import datetime as dt
import json
import math

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from delivery import bulk_copy
from delivery.models import EmailJob, Provider
from delivery.services import EmailDraft, email_enqueue, nudge_drain
from tests.delivery.jobs import new_job as enqueue

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["bulk_create", "copy"])
def write_path(request, monkeypatch):
    """Both ways ``bulk_copy.insert`` writes: one INSERT, or COPY on PostgreSQL from
    ``COPY_FROM`` jobs up (here from one job)."""
    if request.param == "copy":
        if connection.vendor != "postgresql":
            pytest.skip("COPY is PostgreSQL's")
        monkeypatch.setattr(bulk_copy, "COPY_FROM", 1)
    return request.param


def test_enqueue_writes_a_queued_job_due_now():
    before = timezone.now()
    job = enqueue(topic="event:1", headers={"X-Campaign": "spring"})
    job.refresh_from_db()
    assert job.status == EmailJob.Status.QUEUED
    assert job.attempts == 0
    assert before <= job.next_attempt_at <= timezone.now()
    assert job.from_email == "GPMAS <invitations@gpmas.local>"
    assert job.headers == {"X-Campaign": "spring"}
    assert len(job.idempotency_key) == 32


def test_enqueue_with_not_before_is_due_only_then():
    later = timezone.now() + dt.timedelta(hours=3)
    job = enqueue(not_before=later)
    assert job.next_attempt_at == later


def test_same_idempotency_key_returns_the_existing_job(write_path):
    first = enqueue(idempotency_key="confirm:7", subject="First")
    second = enqueue(idempotency_key="confirm:7", subject="Different")
    assert second.pk == first.pk
    assert second.subject == "First"  # the stored job, not the second draft
    assert EmailJob.objects.count() == 1


def test_enqueue_returns_the_jobs_in_the_drafts_order_with_their_ids(write_path):
    existing = enqueue(idempotency_key="k:1", subject="Stored")
    batch = [
        EmailDraft(kind="test", to_email="a@example.com", subject="A", text_body="x"),
        EmailDraft(
            kind="test", to_email="b@example.com", subject="B", text_body="x", idempotency_key="k:1"
        ),
        EmailDraft(
            kind="test", to_email="c@example.com", subject="C", text_body="x", idempotency_key="k:2"
        ),
        EmailDraft(
            kind="test", to_email="d@example.com", subject="D", text_body="x", idempotency_key="k:2"
        ),
    ]
    jobs = email_enqueue(batch)
    assert [job.subject for job in jobs] == ["A", "Stored", "C", "C"]
    assert jobs[1].pk == existing.pk and jobs[2].pk == jobs[3].pk
    stored = EmailJob.objects.in_bulk([job.pk for job in jobs])
    assert [stored[job.pk].subject for job in jobs] == ["A", "Stored", "C", "C"]
    assert EmailJob.objects.count() == 3


def test_copy_writes_the_rows_bulk_create_writes(monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("COPY is PostgreSQL's")
    pinned = Provider.objects.create(name="pinned", kind="console")
    later = timezone.now() + dt.timedelta(days=2)

    def written(prefix: str) -> list[dict]:
        batch = [
            EmailDraft(
                kind="invitation",
                to_email=f"g{i}@example.com",
                subject=f"Tab\there, quote ' \\ {i}",
                text_body="line\nnext \\N \t é",
                html_body="" if i % 2 else "<p>x</p>",
                headers={"Reply-To": "o@example.com", "X-N": str(i)},
                ics="BEGIN:VCALENDAR\r\nEND:VCALENDAR" if i == 1 else "",
                topic="event:9",
                idempotency_key=f"{prefix}:{i}",
                not_before=later if i == 2 else None,
                pinned_provider=pinned if i == 3 else None,
                list_owner_id=None,
            )
            for i in range(4)
        ]
        jobs = email_enqueue(batch)
        skip = {"id", "idempotency_key", "created_at", "updated_at", "next_attempt_at"}
        rows = EmailJob.objects.filter(pk__in=[job.pk for job in jobs]).order_by("pk").values()
        return [{k: v for k, v in row.items() if k not in skip} for row in rows]

    inserted = written("insert")
    monkeypatch.setattr(bulk_copy, "COPY_FROM", 1)
    copied = written("copy")
    assert copied == inserted
    assert copied[2]["not_before"] == later and copied[3]["pinned_provider_id"] == pinned.pk


def test_a_row_built_by_position_is_the_row_keywords_build():
    provider = Provider(pk=7, name="p", kind="console")
    values = {"kind": "invitation", "to_email": "g@example.com", "subject": "Hi", "text_body": "x"}
    by_keyword = EmailJob(**values, pinned_provider=provider, max_attempts=3)
    by_position = bulk_copy.instance(EmailJob, **values, pinned_provider_id=7, max_attempts=3)
    attnames = [field.attname for field in EmailJob._meta.concrete_fields]
    assert [getattr(by_position, a) for a in attnames] == [getattr(by_keyword, a) for a in attnames]
    assert by_position._state.adding and by_position.pk is None
    # A callable default is called per row, as keyword construction calls it: no shared dict.
    other = bulk_copy.instance(EmailJob, **values)
    assert other.headers == {} and other.headers is not by_position.headers
    with pytest.raises(TypeError, match="EmailJob has no field pinned_provider"):
        bulk_copy.instance(EmailJob, **values, pinned_provider=provider)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"to_email": "not-an-email"}, "to_email"),
        ({"to_email": "guest@example.com\r\nBcc: x@evil.example"}, "to_email"),
        ({"subject": "Hi\r\nBcc: x@evil.example"}, "subject"),
        ({"subject": "Hi\nthere"}, "subject"),
        ({"subject": "   "}, "subject"),
        ({"from_email": "Eve\n <eve@example.com>"}, "from_email"),
        ({"from_email": "nobody"}, "from_email"),
        ({"headers": {"X-Name": "a\r\nb"}}, "headers"),
        ({"headers": {"Bad Name": "x"}}, "headers"),
        ({"headers": {"X-GPMAS-Job": "42"}}, "headers"),
        ({"kind": "spam"}, "kind"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error_and_writes_nothing(overrides, field):
    with pytest.raises(ValidationError) as caught:
        enqueue(**overrides)
    assert field in caught.value.message_dict
    assert EmailJob.objects.count() == 0


def test_the_drain_is_nudged_only_after_commit(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        enqueue()
        assert EmailJob.objects.count() == 1
    assert [cb.__name__ for cb in callbacks] == ["nudge_drain"]


def drafts(count: int) -> list[EmailDraft]:
    return [
        EmailDraft(kind="invitation", to_email=f"g{i}@example.com", subject="Join", text_body="x")
        for i in range(count)
    ]


def test_bulk_enqueue_uses_one_insert_and_one_read_per_batch(django_assert_max_num_queries):
    # Batches of 1,000, further split only where the database caps the variables per statement
    # (SQLite); one read of the ids per batch; one read of the suppression list and one of the
    # unsubscribes for the whole call; savepoint statements are the only other queries.
    fields = [f for f in EmailJob._meta.concrete_fields if not f.primary_key]
    rows_per_insert = min(1000, connection.ops.bulk_batch_size(fields, [None] * 1000))
    with django_assert_max_num_queries(math.ceil(2500 / rows_per_insert) + 3 + 2 + 3):
        jobs = email_enqueue(drafts(2500))
    assert len({job.pk for job in jobs}) == 2500
    assert EmailJob.objects.filter(status="queued").count() == 2500


def test_bulk_enqueue_with_one_bad_draft_writes_nothing():
    batch = drafts(10)
    batch[7].to_email = "broken"
    with pytest.raises(ValidationError):
        email_enqueue(batch)
    assert EmailJob.objects.count() == 0


def test_a_nudge_with_the_broker_down_fails_fast_and_keeps_the_job(caplog):
    import time

    from delivery.services import nudge_drain
    from gpmas.celery import app

    original = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:1/0"
    try:
        job = enqueue()
        started = time.monotonic()
        nudge_drain()
        elapsed = time.monotonic() - started
    finally:
        app.conf.broker_url = original
    assert elapsed < 1.0  # Celery's own retries would hold a web request for seconds
    assert "could not nudge the drain" in caplog.text
    assert EmailJob.objects.filter(pk=job.pk, status="queued").exists()


def test_a_nudge_expires_like_the_periodic_drain(redis_client, settings):
    """Nudges written while no worker consumes must not pile up into a queue of drains."""
    queue = f"{settings.CELERY_BROKER_TRANSPORT_OPTIONS['global_keyprefix']}celery"
    nudge_drain()
    headers = json.loads(redis_client.lindex(queue, 0))["headers"]
    expires = dt.datetime.fromisoformat(headers["expires"])
    left = (expires - dt.datetime.now(dt.UTC)).total_seconds()
    assert headers["task"] == "gpmas.delivery.drain"
    assert 0 < left <= settings.GPMAS_DRAIN_INTERVAL_SECONDS * 2
