"""The batched send path: one SendGrid call for the jobs that can share it, the rest one by one;
a failed batch call's messages never go back to its provider one by one at once. Asserted on
what the emulators received and on the rows written."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import time

import pytest
from django.db import DatabaseError, IntegrityError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from delivery import connections, outbox, provider_state
from delivery.message import JOB_HEADER, OutgoingMessage
from delivery.models import DeliveryAttempt, EmailJob, Provider
from delivery.providers.sendgrid import (
    MAX_SUBSTITUTION_BYTES,
    TEXT_TAG,
    SendGridAdapter,
)
from delivery.sending import jobs_send
from sandbox import Fault
from tests.delivery.sendpath import (
    ICS,
    OTHER_SENDER,
    calls,
    copies_of,
    ids,
    new_job,
    only,
    outcomes,
    quota_used,
    timed_send,
)

pytestmark = pytest.mark.django_db
Status = EmailJob.Status


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
    adapter = connections.adapter_for(sendgrid)
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


def test_a_failed_batch_call_at_the_only_provider_is_retried_together_after_a_backoff(
    sendgrid, clean_sandbox, monkeypatch, settings
):
    """No message of the batch goes back to the provider one by one at once: the batch waits one
    shared backoff, then comes back as one batch (docs/architecture.md, "A failed batch call")."""
    fail_first_batch_call(monkeypatch, clean_sandbox, Fault(status=503))
    jobs = [new_job() for _ in range(5)]

    results, window = timed_send(ids(jobs))

    assert results == dict.fromkeys(ids(jobs), Status.RETRYING)
    assert calls(clean_sandbox) == 1  # no single call followed the failed batch call
    assert quota_used(sendgrid) == 0  # the failed call's five were given back
    ceiling = dt.timedelta(seconds=settings.GPMAS_BACKOFF_BASE_SECONDS * 2)  # after 1 attempt
    [due] = set(EmailJob.objects.filter(pk__in=ids(jobs)).values_list("next_attempt_at", flat=True))
    assert window[0] + ceiling / 2 <= due <= window[1] + ceiling

    wait_until(due)
    assert jobs_send(job_ids=ids(jobs)) == dict.fromkeys(ids(jobs), Status.SENT)

    assert calls(clean_sandbox) == 2  # the batch again, in one call
    [batch_started] = {
        a.started_at for a in DeliveryAttempt.objects.filter(outcome="transient", job__in=jobs)
    }
    for job in jobs:
        assert len(copies_of(clean_sandbox, job)) == 1
        assert outcomes(job) == [("sendgrid", "transient"), ("sendgrid", "accepted")]
        failed = DeliveryAttempt.objects.get(job=job, outcome="transient")
        assert (failed.started_at, failed.error_code) == (batch_started, "503")
        job.refresh_from_db()
        assert (job.status, job.attempts) == (Status.SENT, 2)  # two claims, one call each
    assert quota_used(sendgrid) == 5


def test_a_failing_provider_hands_the_batch_to_the_next_one(
    providers_in_fixed_order, clean_sandbox, settings
):
    # One call at a time: with several, the bulkhead would spread them over the standbys.
    settings.GPMAS_CALLS_IN_FLIGHT = 1
    sendgrid = providers_in_fixed_order["sendgrid"]
    Provider.objects.filter(pk=sendgrid.pk).update(daily_quota=1000)
    clean_sandbox.faults.set("sendgrid", Fault(status=503))
    jobs = [new_job() for _ in range(5)]

    jobs_send(job_ids=ids(jobs))

    assert calls(clean_sandbox) == 1  # its messages never went back to it one by one
    for job in jobs:
        [copy] = copies_of(clean_sandbox, job)
        assert copy.provider == "mailgun"
        assert outcomes(job) == [("sendgrid", "transient"), ("mailgun", "accepted")]
        assert EmailJob.objects.get(pk=job.pk).status == Status.SENT
    # The batch call is one failed attempt for each of its jobs, all from the same call.
    first_attempts = [DeliveryAttempt.objects.filter(job=job).order_by("id")[0] for job in jobs]
    assert len({a.started_at for a in first_attempts}) == 1
    assert quota_used(Provider.objects.get(pk=sendgrid.pk)) == 0


def test_the_failed_batch_provider_s_per_message_latency_does_not_make_the_others_slow(
    providers_in_fixed_order, clean_sandbox, settings
):
    """A batch call's latency per message is tiny; were the provider that failed the batch the
    ranking's fastest, every other provider would be "slow" against it, one call at a time
    system-wide, and the batch's single sends would be refused (``slow_busy``) and retried."""
    settings.GPMAS_CALLS_IN_FLIGHT = 4
    standbys = [p for kind, p in providers_in_fixed_order.items() if kind != "sendgrid"]
    sendgrid = providers_in_fixed_order["sendgrid"]
    Provider.objects.update(daily_quota=1000)
    answered_in(sendgrid, seconds_per_message=0.5 / 100)  # a batch call of 100 in 0.5 s
    for provider in standbys:
        # One message a call, slow enough that a loaded machine's noise stays within 2x.
        answered_in(provider, seconds_per_message=0.3)
        clean_sandbox.faults.set(provider.kind, Fault(latency_ms=300))
    clean_sandbox.faults.set("sendgrid", Fault(status=503))
    jobs = [new_job() for _ in range(12)]

    results = jobs_send(job_ids=ids(jobs))

    assert results == dict.fromkeys(ids(jobs), Status.SENT)
    assert calls(clean_sandbox) == 1
    for job in jobs:
        [(first, outcome), (took_it, accepted)] = outcomes(job)
        assert (first, outcome, accepted) == ("sendgrid", "transient", "accepted")
        assert took_it != "sendgrid"


def answered_in(provider: Provider, *, seconds_per_message: float) -> None:
    """The provider's latency estimate, as a successful call leaves it."""
    at = provider_state.now()
    grant = provider_state.reserve(provider, at=at)
    provider_state.record_outcome(
        provider, "accepted", at=at, call_id=grant.call_id, seconds_per_message=seconds_per_message
    )


def wait_until(moment: dt.datetime) -> None:
    time.sleep(max(0.0, (moment - timezone.now()).total_seconds()))


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
    jobs = [new_job() for _ in range(3 if batched else 1)]

    with contextlib.suppress(DatabaseError):
        jobs_send(job_ids=ids(jobs))

    assert len(clean_sandbox.inbox.messages("sendgrid")) == len(jobs)  # the provider has them
    for job in jobs:
        job.refresh_from_db()
        # Left to its lease (the reconciler then records an unknown attempt), or retried with
        # an attempt of its own: anything but "never tried".
        assert job.attempts == 1, (job.status, job.last_error)
