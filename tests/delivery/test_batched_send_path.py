"""The batched send path: one claim for a batch, one SendGrid call for the jobs that can share it,
the rest one by one, and every claimed job whose turn does not come put back untouched.

Asserted on what the emulators received (their inbox and call counts) and on the rows written.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import smtplib
import socket
import threading
import time

import pytest
import redis
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from delivery import outbox, provider_state, sending, services
from delivery.message import JOB_HEADER, OutgoingMessage
from delivery.models import DeliveryAttempt, EmailJob, Provider
from delivery.providers import smtp as smtp_adapter
from delivery.providers.sendgrid import (
    MAX_SUBSTITUTION_BYTES,
    TEXT_TAG,
    SendGridAdapter,
)
from delivery.sending import HaltSwitch, jobs_send
from delivery.services import email_enqueue
from reliability.halt import system_halt
from reliability.models import SystemControl
from sandbox import Fault

pytestmark = pytest.mark.django_db
Status = EmailJob.Status
ICS = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//GPMAS//test//EN\r\nMETHOD:REQUEST\r\n"
    "BEGIN:VEVENT\r\nUID:e1@gpmas.local\r\nSUMMARY:Party\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)
OTHER_SENDER = "Other Team <other@gpmas.local>"
REDIS_DOWN = dt.timedelta(seconds=5)  # how long jobs wait when provider state is unreachable


@pytest.fixture(autouse=True)
def _adapters_closed():
    """Adapters outlive a batch by design (module cache); close their connections after a test."""
    yield
    sending.close_adapters()


def only(kind: str, *, daily_quota: int | None = None) -> Provider:
    """Disable every sandbox provider but ``kind``; return its row as the send path reads it."""
    Provider.objects.exclude(kind=kind).update(enabled=False)
    Provider.objects.filter(kind=kind).update(enabled=True, daily_quota=daily_quota)
    return Provider.objects.get(kind=kind)


@pytest.fixture
def sendgrid(providers) -> Provider:
    return only("sendgrid", daily_quota=1000)


@pytest.fixture
def smtp(providers) -> Provider:
    return only("smtp")


_counter = iter(range(1, 1_000_000))


def new_job(**overrides) -> EmailJob:
    n = next(_counter)
    fields = {
        "kind": "test",
        "to_email": f"guest{n}@example.com",
        "subject": f"Invitation {n}",
        "text_body": f"Hello guest {n}, open https://gpmas.example/i/{n}",
        "html_body": f"<p>Hello <b>guest {n}</b></p>",
        "headers": {"X-Guest": str(n)},
    }
    return email_enqueue(**{**fields, **overrides})


def ids(jobs: list[EmailJob]) -> list[int]:
    return [job.pk for job in jobs]


def calls(sandbox, kind: str = "sendgrid") -> int:
    return sandbox.inbox.stats()[kind]["calls"]


def outcomes(job: EmailJob) -> list[tuple[str, str]]:
    attempts = DeliveryAttempt.objects.filter(job=job).order_by("id")
    return [(a.provider.kind if a.provider else "", a.outcome) for a in attempts]


def quota_used(provider: Provider) -> int:
    return provider_state.read_views([provider], at=provider_state.now())[provider.pk].quota_used


def copies_of(sandbox, job: EmailJob):
    return sandbox.inbox.messages(job=str(job.pk))


Window = tuple[dt.datetime, dt.datetime]


def timed_send(job_ids: list[int]) -> tuple[dict[int, str], Window]:
    """``jobs_send`` and the time window it ran in."""
    before = timezone.now()
    results = jobs_send(job_ids=job_ids)
    return results, (before, timezone.now())


def assert_put_back(
    jobs: list[EmailJob], window: Window, *, later_by=dt.timedelta(0), reason: str = ""
) -> None:
    """Back in the queue as if never claimed, due ``later_by`` after they were put back."""
    for job in jobs:
        job.refresh_from_db()
        assert (job.status, job.attempts, job.lease_expires_at) == (Status.QUEUED, 0, None)
        assert window[0] + later_by <= job.next_attempt_at <= window[1] + later_by
        if reason:
            assert job.last_error == reason
        assert not DeliveryAttempt.objects.filter(job=job).exists()


# --- One call for the jobs that can share it ---------------------------------------------------


def test_jobs_sharing_a_sender_go_in_one_sendgrid_call(sendgrid, clean_sandbox):
    jobs = [new_job() for _ in range(25)]

    results = jobs_send(job_ids=ids(jobs))

    assert results == dict.fromkeys(ids(jobs), Status.SENT)
    stats = clean_sandbox.inbox.stats()["sendgrid"]
    assert (stats["calls"], stats["accepted"], stats["messages"]) == (1, 1, 25)
    captured = clean_sandbox.inbox.messages("sendgrid")
    assert sorted(m.job for m in captured) == sorted(str(pk) for pk in ids(jobs))
    [call_id] = {m.provider_message_id for m in captured}
    for job in jobs:
        [copy] = copies_of(clean_sandbox, job)
        assert copy.to == [job.to_email]
        assert copy.subject == job.subject
        assert copy.text == job.text_body
        assert copy.html == job.html_body
        assert copy.header(JOB_HEADER) == str(job.pk)
        assert copy.header("X-Guest") == job.headers["X-Guest"]
        job.refresh_from_db()
        assert (job.status, job.attempts, job.provider_id) == (Status.SENT, 1, sendgrid.pk)
        assert job.provider_message_id == call_id
        assert job.lease_expires_at is None and job.finished_at is not None
        assert outcomes(job) == [("sendgrid", "accepted")]
    assert quota_used(sendgrid) == 25


def test_the_batch_path_costs_the_same_queries_for_5_jobs_as_for_25(sendgrid, clean_sandbox):
    def queries_for(count: int) -> int:
        jobs = [new_job() for _ in range(count)]
        with CaptureQueriesContext(connection) as captured:
            assert set(jobs_send(job_ids=ids(jobs)).values()) == {Status.SENT}
        return len(captured.captured_queries)

    assert queries_for(5) == queries_for(25)
    assert calls(clean_sandbox) == 2


def test_a_batch_keeps_non_ascii_subjects_bodies_and_display_names(sendgrid, clean_sandbox):
    jobs = [
        new_job(subject="Einladung: Grüße ☕", text_body="Zoë lädt ein — 😀", html_body="<p>é</p>"),
        new_job(from_email="Zoë Organizer <invitations@gpmas.local>"),
        new_job(from_email="Zoë Organizer <invitations@gpmas.local>", subject="Straße"),
    ]

    jobs_send(job_ids=ids(jobs))

    assert calls(clean_sandbox) == 2  # a batch for the second sender; the first job alone
    for job in jobs:
        [copy] = copies_of(clean_sandbox, job)
        assert (copy.subject, copy.text, copy.html) == (job.subject, job.text_body, job.html_body)
        assert EmailJob.objects.get(pk=job.pk).status == Status.SENT
    batch = json.loads(copies_of(clean_sandbox, jobs[2])[0].raw)
    assert batch["from"] == {"email": "invitations@gpmas.local", "name": "Zoë Organizer"}
    assert len(batch["personalizations"]) == 2


def test_senders_and_html_or_not_make_separate_batches(sendgrid, clean_sandbox):
    plain = [new_job(html_body="") for _ in range(3)]
    html = [new_job() for _ in range(3)]
    other = [new_job(from_email=OTHER_SENDER) for _ in range(3)]

    jobs_send(job_ids=ids(plain + html + other))

    assert calls(clean_sandbox) == 3
    for group in (plain, html, other):
        [call_id] = {copies_of(clean_sandbox, job)[0].provider_message_id for job in group}
        assert EmailJob.objects.filter(provider_message_id=call_id).count() == 3
    for job in plain:
        assert copies_of(clean_sandbox, job)[0].html == ""
    for job in other:
        assert copies_of(clean_sandbox, job)[0].from_email == "other@gpmas.local"


def test_jobs_that_cannot_share_a_call_go_alone(sendgrid, clean_sandbox):
    batched = [new_job() for _ in range(10)]
    with_ics = new_job(ics=ICS)
    pinned = new_job(pinned_provider=sendgrid)
    too_big = new_job(text_body="x" * MAX_SUBSTITUTION_BYTES)

    results = jobs_send(job_ids=ids([*batched, with_ics, pinned, too_big]))

    assert set(results.values()) == {Status.SENT}
    assert calls(clean_sandbox) == 1 + 3
    [batch_id] = {copies_of(clean_sandbox, job)[0].provider_message_id for job in batched}
    for alone in (with_ics, pinned, too_big):
        [copy] = copies_of(clean_sandbox, alone)
        assert copy.provider_message_id != batch_id
        assert outcomes(alone) == [("sendgrid", "accepted")]
    [copy] = copies_of(clean_sandbox, with_ics)
    assert [(name, kind) for name, kind, _ in copy.attachments] == [
        ("invite.ics", "text/calendar; method=REQUEST")
    ]
    assert copies_of(clean_sandbox, too_big)[0].text == too_big.text_body
    assert quota_used(sendgrid) == 13


def test_a_body_at_the_substitution_limit_still_fits_the_emulators_limit(sendgrid, clean_sandbox):
    """The adapter's size rule and SendGrid's (the emulator's) must agree to the byte."""
    adapter = sending.adapter_for(sendgrid)
    room = MAX_SUBSTITUTION_BYTES - 2 * len(TEXT_TAG)
    fits = dict(to_email="a@example.com", from_email="x@gpmas.local", subject="S")
    at_limit = OutgoingMessage(**fits, text_body="é" * ((room - 4) // 2), html_body="<p>x")
    assert len(at_limit.text_body.encode()) + len(at_limit.html_body.encode()) == room
    over = OutgoingMessage(**fits, text_body="é" * (room // 2 + 1), html_body="")
    assert adapter.batch_key(at_limit) is not None
    assert adapter.batch_key(over) is None

    second = OutgoingMessage(**{**fits, "to_email": "b@example.com"}, text_body="é" * 4)
    assert adapter.send_batch([at_limit, second])
    copies = {m.to[0]: m for m in clean_sandbox.inbox.messages("sendgrid")}
    assert copies["a@example.com"].text == at_limit.text_body
    assert copies["b@example.com"].text == second.text_body


# --- A failed batch call ----------------------------------------------------------------------


def fail_first_batch_call(monkeypatch, sandbox, fault: Fault) -> None:
    """The emulator's fault holds for every call: lift it as soon as the batch call returns."""
    real = SendGridAdapter.send_batch

    def send_batch(self, messages):
        try:
            return real(self, messages)
        finally:
            sandbox.faults.clear("sendgrid")

    sandbox.faults.set("sendgrid", fault)
    monkeypatch.setattr(SendGridAdapter, "send_batch", send_batch)


def test_a_failed_batch_call_falls_back_to_one_by_one(sendgrid, clean_sandbox, monkeypatch):
    fail_first_batch_call(monkeypatch, clean_sandbox, Fault(status=503))
    jobs = [new_job() for _ in range(5)]

    results = jobs_send(job_ids=ids(jobs))

    assert results == dict.fromkeys(ids(jobs), Status.SENT)
    assert calls(clean_sandbox) == 1 + 5
    [batch_started] = {
        a.started_at for a in DeliveryAttempt.objects.filter(outcome="transient", job__in=jobs)
    }
    for job in jobs:
        assert len(copies_of(clean_sandbox, job)) == 1
        assert outcomes(job) == [("sendgrid", "transient"), ("sendgrid", "accepted")]
        failed = DeliveryAttempt.objects.get(job=job, outcome="transient")
        assert (failed.started_at, failed.error_code) == (batch_started, "503")
        job.refresh_from_db()
        assert (job.status, job.attempts) == (Status.SENT, 1)  # one claim, two calls
    assert quota_used(sendgrid) == 5  # the failed call's five were given back


def test_a_failing_provider_hands_the_batch_to_the_next_one(
    providers_in_fixed_order, clean_sandbox
):
    sendgrid = providers_in_fixed_order["sendgrid"]
    Provider.objects.filter(pk=sendgrid.pk).update(daily_quota=1000)
    clean_sandbox.faults.set("sendgrid", Fault(status=503))
    jobs = [new_job() for _ in range(5)]

    jobs_send(job_ids=ids(jobs))

    for job in jobs:
        [copy] = copies_of(clean_sandbox, job)
        assert copy.provider == "mailgun"
        assert outcomes(job)[0] == ("sendgrid", "transient")
        assert outcomes(job)[-1] == ("mailgun", "accepted")
        assert EmailJob.objects.get(pk=job.pk).status == Status.SENT
    # The batch call is one failed attempt for each of its jobs, all from the same call.
    first_attempts = [DeliveryAttempt.objects.filter(job=job).order_by("id")[0] for job in jobs]
    assert len({a.started_at for a in first_attempts}) == 1
    assert quota_used(Provider.objects.get(pk=sendgrid.pk)) == 0


def test_a_recipient_sendgrid_rejects_fails_alone(sendgrid, clean_sandbox):
    good = [new_job(), new_job()]
    # A valid address for GPMAS, not for SendGrid (no dot in the domain): the call gets a 400.
    bad = new_job(to_email="guest@localhost")
    good += [new_job(), new_job()]
    jobs = [*good[:2], bad, *good[2:]]

    results = jobs_send(job_ids=ids(jobs))

    assert results == {**dict.fromkeys(ids(good), Status.SENT), bad.pk: Status.FAILED}
    assert calls(clean_sandbox) == 1 + 5
    for job in good:
        assert len(copies_of(clean_sandbox, job)) == 1
        (_, batch_outcome), last = outcomes(job)
        assert batch_outcome != "accepted" and last == ("sendgrid", "accepted")
    assert copies_of(clean_sandbox, bad) == []
    bad.refresh_from_db()
    assert (bad.status, bad.attempts) == (Status.FAILED, 1)
    assert bad.last_error.startswith("sandbox-sendgrid: HTTP 400")
    assert "valid address" in bad.last_error
    assert quota_used(sendgrid) == 4


def test_a_batch_larger_than_the_quota_left_goes_one_by_one_up_to_the_quota(
    providers, clean_sandbox
):
    sendgrid = only("sendgrid", daily_quota=3)
    jobs = [new_job() for _ in range(5)]

    results = jobs_send(job_ids=ids(jobs))

    assert [results[pk] for pk in ids(jobs)] == [Status.SENT] * 3 + [Status.QUEUED] * 2
    assert calls(clean_sandbox) == 3  # the batch was never sent: it would overrun the quota
    assert quota_used(sendgrid) == 3
    for job in jobs[3:]:
        job.refresh_from_db()
        assert (job.status, job.attempts) == (Status.QUEUED, 0)
        next_day = provider_state.next_quota_reset(sendgrid.quota_reset_tz, time.time())
        assert job.next_attempt_at.timestamp() == pytest.approx(next_day, abs=1)


@pytest.mark.parametrize("batched", [False, True], ids=["single", "batch"])
def test_a_job_the_provider_took_is_not_put_back_as_untried_when_its_write_fails(
    sendgrid, clean_sandbox, monkeypatch, batched
):
    def write_fails(*args, **kwargs):
        raise IntegrityError("simulated: the write recording the acceptance failed")

    monkeypatch.setattr(outbox, "record_accepted", write_fails)
    monkeypatch.setattr(outbox, "record_accepted_together", write_fails)
    jobs = [new_job() for _ in range(3 if batched else 1)]

    with contextlib.suppress(DatabaseError):
        jobs_send(job_ids=ids(jobs))

    assert len(clean_sandbox.inbox.messages("sendgrid")) == len(jobs)  # the provider has them
    for job in jobs:
        job.refresh_from_db()
        # Left to its lease (the reconciler then records an unknown attempt), or retried with
        # an attempt of its own: anything but "never tried".
        assert job.attempts == 1, (job.status, job.last_error)


# --- Halt, time budget and Redis: the jobs whose turn does not come go back ----------------------


def halt_after(monkeypatch, cls, method: str, *, calls_before_halt: int = 1) -> None:
    """Halt the system (for real) from inside the adapter, right after its n-th call."""
    real = getattr(cls, method)
    count = {"n": 0}

    def call(self, *args):
        try:
            return real(self, *args)
        finally:
            count["n"] += 1
            if count["n"] == calls_before_halt:
                system_halt(reason="incident", source="test")

    monkeypatch.setattr(cls, method, call)


def test_a_halt_after_a_call_stops_the_rest_of_the_batch(sendgrid, clean_sandbox, monkeypatch):
    halt_after(monkeypatch, SendGridAdapter, "send")
    jobs = [new_job(ics=ICS) for _ in range(5)]  # not batchable: one call each

    results, window = timed_send(ids(jobs))

    assert calls(clean_sandbox) == 1
    assert (results[jobs[0].pk], results[jobs[1].pk]) == (Status.SENT, sending.HALTED)
    assert EmailJob.objects.get(pk=jobs[0].pk).status == Status.SENT
    assert_put_back(jobs[1:], window)


def test_a_halt_after_a_batch_call_stops_the_next_batch_and_the_singles(
    sendgrid, clean_sandbox, monkeypatch
):
    halt_after(monkeypatch, SendGridAdapter, "send_batch")
    first = [new_job() for _ in range(3)]
    second = [new_job(from_email=OTHER_SENDER) for _ in range(3)]
    alone = [new_job(ics=ICS) for _ in range(2)]

    _, window = timed_send(ids(first + second + alone))

    assert calls(clean_sandbox) == 1
    assert {EmailJob.objects.get(pk=pk).status for pk in ids(first)} == {Status.SENT}
    assert_put_back(second + alone, window)


def test_a_batch_past_half_the_lease_puts_the_untried_jobs_back(sendgrid, clean_sandbox, settings):
    settings.GPMAS_JOB_LEASE_SECONDS = 0  # the deadline has passed as soon as the claim is made
    jobs = [new_job(ics=ICS) for _ in range(3)]

    _, window = timed_send(ids(jobs))

    assert calls(clean_sandbox) == 0
    assert_put_back(jobs, window, reason="the batch ended before its turn")


def test_a_slow_batch_call_leaves_no_time_for_the_singles(sendgrid, clean_sandbox, settings):
    settings.GPMAS_JOB_LEASE_SECONDS = 0.6  # the send path stops 0.3 s after the claim
    clean_sandbox.faults.set("sendgrid", Fault(latency_ms=400))
    batched = [new_job() for _ in range(3)]
    alone = [new_job(ics=ICS) for _ in range(2)]

    _, window = timed_send(ids(batched + alone))

    assert calls(clean_sandbox) == 1
    assert {EmailJob.objects.get(pk=pk).status for pk in ids(batched)} == {Status.SENT}
    assert_put_back(alone, window, reason="the batch ended before its turn")


def test_a_slow_batch_call_leaves_no_time_for_the_next_batch(sendgrid, clean_sandbox, settings):
    settings.GPMAS_JOB_LEASE_SECONDS = 0.6
    clean_sandbox.faults.set("sendgrid", Fault(latency_ms=400))
    first = [new_job() for _ in range(3)]
    second = [new_job(from_email=OTHER_SENDER) for _ in range(3)]

    _, window = timed_send(ids(first + second))

    assert calls(clean_sandbox) == 1
    assert_put_back(second, window, reason="the batch ended before its turn")


def redis_down(monkeypatch, *, after: int = 0) -> None:
    """Provider state reads and reservations fail (as with Redis down) from the ``after``+1-th
    of them on."""
    real_read, real_reserve = provider_state.read_views, provider_state.reserve
    count = {"n": 0}

    def up() -> None:
        count["n"] += 1
        if count["n"] > after:
            raise redis.ConnectionError("Error 111 connecting to redis. Connection refused.")

    def read_views(providers, *, at):
        up()
        return real_read(providers, at=at)

    def reserve(provider, *, at, recipients=1):
        up()
        return real_reserve(provider, at=at, recipients=recipients)

    monkeypatch.setattr(provider_state, "read_views", read_views)
    monkeypatch.setattr(provider_state, "reserve", reserve)


def test_redis_down_before_a_single_job_puts_it_back_for_5_seconds(
    sendgrid, clean_sandbox, monkeypatch
):
    redis_down(monkeypatch)
    job = new_job()

    _, window = timed_send([job.pk])

    assert calls(clean_sandbox) == 0
    assert_put_back([job], window, later_by=REDIS_DOWN, reason="Redis unavailable")


def test_redis_down_mid_batch_puts_the_untried_jobs_back_for_5_seconds(
    sendgrid, clean_sandbox, monkeypatch
):
    redis_down(monkeypatch, after=2)  # the batch's ranking and the first job's reservation
    jobs = [new_job(ics=ICS) for _ in range(4)]

    _, window = timed_send(ids(jobs))

    assert calls(clean_sandbox) == 1
    assert EmailJob.objects.get(pk=jobs[0].pk).status == Status.SENT
    assert_put_back(jobs[1:], window, later_by=REDIS_DOWN, reason="Redis unavailable")


@pytest.mark.parametrize("where", ["ranking", "reserve"])
def test_redis_down_at_the_start_of_a_batch_puts_every_job_back_for_5_seconds(
    sendgrid, clean_sandbox, monkeypatch, where
):
    if where == "ranking":
        redis_down(monkeypatch)
    else:

        def reserve(provider, *, at, recipients=1):
            raise redis.ConnectionError("Connection refused.")

        monkeypatch.setattr(provider_state, "reserve", reserve)
    jobs = [new_job() for _ in range(3)]

    _, window = timed_send(ids(jobs))

    assert calls(clean_sandbox) == 0
    assert_put_back(jobs, window, later_by=REDIS_DOWN, reason="Redis unavailable")


# --- outbox.claim_many --------------------------------------------------------------------------


def test_claim_many_takes_due_free_jobs_in_id_order_counting_one_attempt_each():
    due = [new_job() for _ in range(3)]
    later = new_job(not_before=timezone.now() + dt.timedelta(minutes=5))
    sending_already = new_job()
    outbox.claim(sending_already.pk)
    cancelled = new_job()
    outbox.cancel(EmailJob.objects.filter(pk=cancelled.pk), reason="x")
    retrying_due = new_job()
    outbox.schedule_retry(outbox.claim(retrying_due.pk), error="503")
    EmailJob.objects.filter(pk=retrying_due.pk).update(next_attempt_at=timezone.now())
    asked = [
        due[2].pk,
        later.pk,
        retrying_due.pk,
        due[0].pk,
        sending_already.pk,
        cancelled.pk,
        due[1].pk,
        10**9,
    ]

    before = timezone.now()
    claimed = outbox.claim_many(asked)

    expected = sorted([*ids(due), retrying_due.pk])
    assert [job.pk for job in claimed] == expected
    for job in claimed:
        assert job.status == Status.SENDING
        assert job.lease_expires_at >= before + dt.timedelta(seconds=299)
        assert job.attempts == (2 if job.pk == retrying_due.pk else 1)
        assert EmailJob.objects.get(pk=job.pk).attempts == job.attempts
    untouched = {pk: EmailJob.objects.get(pk=pk) for pk in (later.pk, sending_already.pk)}
    assert (untouched[later.pk].status, untouched[later.pk].attempts) == (Status.QUEUED, 0)
    assert untouched[sending_already.pk].attempts == 1
    assert outbox.claim_many(expected) == []


def test_release_many_gives_back_only_the_attempts_of_jobs_still_held():
    jobs = outbox.claim_many(ids([new_job() for _ in range(3)]))
    EmailJob.objects.filter(pk=jobs[2].pk).update(attempts=F("attempts") + 1)  # claimed again
    due_at = timezone.now() + dt.timedelta(seconds=7)

    assert outbox.release_many(jobs, due_at=due_at, reason="halted") == 2

    for job in jobs[:2]:
        job.refresh_from_db()
        assert (job.status, job.attempts, job.next_attempt_at) == (Status.QUEUED, 0, due_at)
        assert job.last_error == "halted"
    assert EmailJob.objects.get(pk=jobs[2].pk).status == Status.SENDING


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_claim_many_skips_a_row_another_transaction_holds_without_waiting(monkeypatch):
    monkeypatch.setattr(services, "nudge_drain", lambda: None)  # autocommit: it would publish
    jobs = [new_job() for _ in range(3)]
    locked, release, failures = threading.Event(), threading.Event(), []

    def hold_the_middle_row() -> None:
        try:
            with transaction.atomic():
                EmailJob.objects.select_for_update().get(pk=jobs[1].pk)
                locked.set()
                release.wait(timeout=10)
        except Exception as exc:  # asserted below
            failures.append(exc)
            locked.set()
        finally:
            connection.close()

    holder = threading.Thread(target=hold_the_middle_row)
    holder.start()
    try:
        assert locked.wait(timeout=10)
        started = time.monotonic()
        claimed = outbox.claim_many(ids(jobs))
        elapsed = time.monotonic() - started
    finally:
        release.set()
        holder.join(timeout=30)

    assert failures == []
    assert [job.pk for job in claimed] == [jobs[0].pk, jobs[2].pk]
    assert elapsed < 2
    jobs[1].refresh_from_db()
    assert (jobs[1].status, jobs[1].attempts) == (Status.QUEUED, 0)
    assert [job.pk for job in outbox.claim_many([jobs[1].pk])] == [jobs[1].pk]


# --- outbox.record_accepted ---------------------------------------------------------------------


@pytest.fixture
def console_provider() -> Provider:
    return Provider.objects.create(name="console-a", kind="console")


def accepted(job: EmailJob, provider: Provider, message_id: str = "msg-1") -> outbox.Accepted:
    return outbox.Accepted(job, provider, message_id, timezone.now(), 12)


def test_record_accepted_marks_the_job_sent_and_says_whether_sending_is_halted(
    console_provider,
):
    running, halted = outbox.claim_many(ids([new_job(), new_job()]))

    assert outbox.record_accepted(accepted(running, console_provider, "msg-1")) is False
    SystemControl.objects.create(pk=1, halted=True, reason="incident")
    assert outbox.record_accepted(accepted(halted, console_provider, "msg-2")) is True

    for job, message_id in ((running, "msg-1"), (halted, "msg-2")):
        job.refresh_from_db()
        assert (job.status, job.attempts, job.provider_id) == (Status.SENT, 1, console_provider.pk)
        assert (job.provider_message_id, job.lease_expires_at) == (message_id, None)
        assert job.finished_at is not None and job.last_error == ""
        [attempt] = DeliveryAttempt.objects.filter(job=job)
        assert (attempt.outcome, attempt.provider_id, attempt.duration_ms) == (
            "accepted",
            console_provider.pk,
            12,
        )


def test_record_accepted_does_not_touch_a_job_no_longer_held(console_provider):
    [job] = outbox.claim_many([new_job().pk])
    EmailJob.objects.filter(pk=job.pk).update(attempts=F("attempts") + 1)  # claimed again

    assert outbox.record_accepted(accepted(job, console_provider)) is False

    job.refresh_from_db()
    assert (job.status, job.attempts, job.provider_id, job.provider_message_id) == (
        Status.SENDING,
        2,
        None,
        "",
    )
    # A job already sent stays as it was sent.
    [other] = outbox.claim_many([new_job().pk])
    outbox.record_accepted(accepted(other, console_provider, "first"))
    outbox.record_accepted(accepted(other, console_provider, "second"))
    assert EmailJob.objects.get(pk=other.pk).provider_message_id == "first"


@pytest.mark.postgres
def test_record_accepted_is_one_statement_on_postgresql(
    console_provider, django_assert_num_queries
):
    [job] = outbox.claim_many([new_job().pk])
    with django_assert_num_queries(1):
        assert outbox.record_accepted(accepted(job, console_provider)) is False
    assert EmailJob.objects.get(pk=job.pk).status == Status.SENT


def test_record_accepted_together_marks_only_the_jobs_still_held(console_provider):
    jobs = outbox.claim_many(ids([new_job() for _ in range(3)]))
    EmailJob.objects.filter(pk=jobs[1].pk).update(attempts=F("attempts") + 1)
    SystemControl.objects.create(pk=1, halted=True, reason="incident")

    assert outbox.record_accepted_together([accepted(j, console_provider, "call") for j in jobs])

    statuses = dict(EmailJob.objects.filter(pk__in=ids(jobs)).values_list("pk", "status"))
    assert statuses == {jobs[0].pk: "sent", jobs[1].pk: "sending", jobs[2].pk: "sent"}
    assert DeliveryAttempt.objects.filter(job__in=jobs, outcome="accepted").count() == 3


# --- HaltSwitch ---------------------------------------------------------------------------------


def test_a_fresh_reading_serves_the_next_check_once_without_a_query(
    django_assert_num_queries, monkeypatch
):
    clock = [1000.0]
    monkeypatch.setattr(sending.time, "monotonic", lambda: clock[0])
    switch = HaltSwitch()
    switch.leave(True)  # the database says otherwise: only the reading can answer True
    clock[0] += HaltSwitch.FRESH_FOR_SECONDS / 2
    with django_assert_num_queries(0):
        assert switch.halted() is True
    with django_assert_num_queries(1):
        assert switch.halted() is False  # used up: asked again


def test_a_stale_reading_is_taken_again(django_assert_num_queries, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(sending.time, "monotonic", lambda: clock[0])
    switch = HaltSwitch()
    switch.leave(True)
    clock[0] += 2 * HaltSwitch.FRESH_FOR_SECONDS
    with django_assert_num_queries(1):
        assert switch.halted() is False


def test_with_no_freshness_allowed_every_check_queries(django_assert_num_queries, monkeypatch):
    monkeypatch.setattr(HaltSwitch, "FRESH_FOR_SECONDS", 0)
    switch = HaltSwitch()
    switch.leave(True)
    with django_assert_num_queries(1):
        assert switch.halted() is False


def test_without_a_reading_the_switch_queries(django_assert_num_queries):
    SystemControl.objects.create(pk=1, halted=True, reason="incident")
    with django_assert_num_queries(1):
        assert HaltSwitch().halted() is True


# --- SMTP: one connection across batches -----------------------------------------------------


@pytest.fixture
def smtp_sessions(monkeypatch) -> dict[str, int]:
    counts = {"connects": 0, "logins": 0}
    real_connect, real_login = smtplib.SMTP.connect, smtplib.SMTP.login

    def connect(self, *args, **kwargs):
        counts["connects"] += 1
        return real_connect(self, *args, **kwargs)

    def login(self, *args, **kwargs):
        counts["logins"] += 1
        return real_login(self, *args, **kwargs)

    monkeypatch.setattr(smtplib.SMTP, "connect", connect)
    monkeypatch.setattr(smtplib.SMTP, "login", login)
    return counts


def test_smtp_keeps_one_connection_across_batches(smtp, clean_sandbox, smtp_sessions):
    first, second = [new_job() for _ in range(2)], [new_job() for _ in range(2)]

    assert set(jobs_send(job_ids=ids(first)).values()) == {Status.SENT}
    held = sending.adapter_for(smtp).connection
    assert set(jobs_send(job_ids=ids(second)).values()) == {Status.SENT}

    assert sending.adapter_for(smtp).connection is held is not None
    assert smtp_sessions == {"connects": 1, "logins": 1}
    assert len(clean_sandbox.inbox.messages("smtp")) == 4


def test_an_idle_connection_that_still_answers_noop_is_reused(smtp, clean_sandbox, smtp_sessions):
    jobs_send(job_ids=[new_job().pk])
    adapter = sending.adapter_for(smtp)
    held = adapter.connection
    adapter.last_used -= smtp_adapter.CHECK_AFTER_IDLE_SECONDS + 1

    assert jobs_send(job_ids=[new_job().pk]) == {EmailJob.objects.latest("id").pk: Status.SENT}

    assert adapter.connection is held
    assert smtp_sessions["connects"] == 1


@pytest.mark.parametrize("how", ["closed", "shut down"])
def test_a_dead_idle_connection_is_reopened_before_it_carries_a_message(
    smtp, clean_sandbox, smtp_sessions, how
):
    jobs_send(job_ids=[new_job().pk])
    adapter = sending.adapter_for(smtp)
    dead = adapter.connection
    if how == "closed":
        dead.close()  # socket and its file closed, as after the server dropped the client
    else:
        dead.sock.shutdown(socket.SHUT_RDWR)
    adapter.last_used -= smtp_adapter.CHECK_AFTER_IDLE_SECONDS + 1
    job = new_job()

    assert jobs_send(job_ids=[job.pk]) == {job.pk: Status.SENT}

    assert adapter.connection is not dead and adapter.connection is not None
    assert smtp_sessions == {"connects": 2, "logins": 2}
    assert outcomes(job) == [("smtp", "accepted")]
    assert not DeliveryAttempt.objects.filter(outcome="unknown").exists()
    assert len(copies_of(clean_sandbox, job)) == 1
