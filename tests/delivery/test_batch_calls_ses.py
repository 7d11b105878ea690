"""SES batch sending: jobs that can share a call go in one SendBulkEmail request, one template
entry each, and every recipient still gets a message of their own (subject, bodies, headers, job
identity, SES message id). SES answers per entry: a refused entry fails or goes alone, the rest
are sent. Asserted on what the emulator received, through boto3, and on the rows written."""

from __future__ import annotations

from collections import Counter

import pytest
from django.utils import timezone

from delivery import connections
from delivery.message import JOB_HEADER, OutgoingMessage
from delivery.models import DeliveryAttempt, EmailJob, Provider
from delivery.providers import ErrorClass, SendError
from delivery.providers.ses import SesAdapter
from delivery.providers.ses_bulk import MAX_DESTINATIONS, MAX_VARIABLE_BYTES
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
)

pytestmark = pytest.mark.django_db
Status = EmailJob.Status


def unsubscribable_job(**overrides) -> EmailJob:
    job = new_job(**overrides)
    headers = {**job.headers, "List-Unsubscribe": f"<https://gpmas.example/u/{job.pk}>"}
    EmailJob.objects.filter(pk=job.pk).update(headers=headers)
    job.refresh_from_db()
    return job


# --- Through the real send path ---------------------------------------------------------------


def test_jobs_sharing_a_sender_go_in_one_bulk_call_each_with_its_own_message(ses, clean_sandbox):
    jobs = [unsubscribable_job(subject=f"Grüße {i} ☕") for i in range(25)]

    results = jobs_send(job_ids=ids(jobs))

    assert results == dict.fromkeys(ids(jobs), Status.SENT)
    stats = clean_sandbox.inbox.stats()["ses"]
    assert (stats["calls"], stats["accepted"], stats["messages"]) == (1, 1, 25)
    message_ids = set()
    for job in jobs:
        [copy] = copies_of(clean_sandbox, job)
        assert copy.to == [job.to_email]
        assert copy.header("To") == job.to_email  # addressed to them alone
        assert copy.subject == job.subject
        assert copy.text.strip() == job.text_body  # the invite link: each its own
        assert copy.html.strip() == job.html_body
        assert copy.header(JOB_HEADER) == str(job.pk)
        assert copy.header("X-Guest") == job.headers["X-Guest"]
        assert copy.header("List-Unsubscribe") == job.headers["List-Unsubscribe"]
        job.refresh_from_db()
        assert (job.status, job.attempts, job.provider_id) == (Status.SENT, 1, ses.pk)
        assert job.provider_message_id == copy.provider_message_id  # SES's id of this message
        message_ids.add(job.provider_message_id)
        assert outcomes(job) == [("ses", "accepted")]
    assert len(message_ids) == 25
    assert quota_used(ses) == 25  # recipients, not calls


def test_more_jobs_than_a_call_holds_go_in_calls_of_50(ses, clean_sandbox):
    jobs = [new_job() for _ in range(MAX_DESTINATIONS + 10)]

    results = jobs_send(job_ids=ids(jobs))

    assert set(results.values()) == {Status.SENT}
    assert calls(clean_sandbox, "ses") == 2
    assert clean_sandbox.inbox.stats()["ses"]["messages"] == 60


def test_jobs_that_cannot_share_a_bulk_call_go_alone_by_send_email(ses, clean_sandbox):
    batched = [new_job() for _ in range(5)]
    alone = [
        new_job(ics=ICS),  # an inline template's attachments are shared by every entry
        new_job(text_body="Dear {{name}}, literally"),  # Handlebars' delimiter
        new_job(headers={"X-Note": "Grüße"}),  # SES takes a header field in printable ASCII
        new_job(text_body="x" * MAX_VARIABLE_BYTES),
        new_job(from_email=OTHER_SENDER),
    ]

    results = jobs_send(job_ids=ids([*batched, *alone]))

    assert set(results.values()) == {Status.SENT}
    assert calls(clean_sandbox, "ses") == 1 + len(alone)
    for job in alone:
        [copy] = copies_of(clean_sandbox, job)
        assert copy.text.strip() == job.text_body.strip()
    assert copies_of(clean_sandbox, alone[1])[0].text.strip() == "Dear {{name}}, literally"
    [copy] = copies_of(clean_sandbox, alone[0])
    assert [name for name, _, _ in copy.attachments] == ["invite.ics"]
    assert copies_of(clean_sandbox, alone[2])[0].header("X-Note") == "Grüße"


def test_an_entry_ses_rejects_fails_alone_and_the_others_are_sent(ses, clean_sandbox):
    good = [new_job() for _ in range(4)]
    bad = new_job(to_email="rejected@example.com")
    jobs = [*good[:2], bad, *good[2:]]

    results = jobs_send(job_ids=ids(jobs))

    assert results == {**dict.fromkeys(ids(good), Status.SENT), bad.pk: Status.FAILED}
    assert calls(clean_sandbox, "ses") == 1  # no second call: SES answered for each entry
    for job in good:
        assert outcomes(job) == [("ses", "accepted")]
    assert copies_of(clean_sandbox, bad) == []
    bad.refresh_from_db()
    assert (bad.status, bad.attempts) == (Status.FAILED, 1)
    assert bad.last_error.startswith("sandbox-ses: MESSAGE_REJECTED")
    assert outcomes(bad) == [("ses", "recipient_rejected")]
    assert quota_used(ses) == 4  # the rejected one's quota was given back


def test_an_entry_refused_for_another_reason_is_sent_alone_afterwards(
    ses, clean_sandbox, monkeypatch
):
    """Certainly not taken (SES said so for that entry), so the put-back rule lets it go back
    to untried: it is sent alone by SendEmail, its refused attempt on record."""
    real = SesAdapter.send_batch

    def one_throttled(self, messages):
        answers = real(self, messages)
        answers[1] = SendError(
            ErrorClass.RATE_LIMITED, "ACCOUNT_THROTTLED", code="ACCOUNT_THROTTLED"
        )
        return answers

    monkeypatch.setattr(SesAdapter, "send_batch", one_throttled)
    jobs = [new_job() for _ in range(3)]

    results = jobs_send(job_ids=ids(jobs))

    assert results == dict.fromkeys(ids(jobs), Status.SENT)
    assert calls(clean_sandbox, "ses") == 2
    assert outcomes(jobs[1]) == [("ses", "rate_limited"), ("ses", "accepted")]
    assert outcomes(jobs[0]) == outcomes(jobs[2]) == [("ses", "accepted")]
    jobs[1].refresh_from_db()
    assert (jobs[1].status, jobs[1].attempts) == (Status.SENT, 1)


def test_a_failed_bulk_call_at_the_only_provider_is_retried_together(
    ses, clean_sandbox, monkeypatch
):
    # The failed-batch rule (delivery/failed_calls.py): no message goes back to SES one by one
    # at once; the batch waits one shared backoff and comes back as one bulk call.
    real = SesAdapter.send_batch

    def fail_once(self, messages):
        try:
            return real(self, messages)
        finally:
            clean_sandbox.faults.clear("ses")

    clean_sandbox.faults.set("ses", Fault(status=500))
    monkeypatch.setattr(SesAdapter, "send_batch", fail_once)
    jobs = [new_job() for _ in range(4)]

    assert jobs_send(job_ids=ids(jobs)) == dict.fromkeys(ids(jobs), Status.RETRYING)
    assert calls(clean_sandbox, "ses") == 1
    assert quota_used(ses) == 0  # the failed call's four were given back
    assert len(set(EmailJob.objects.filter(pk__in=ids(jobs)).values_list("next_attempt_at"))) == 1

    EmailJob.objects.filter(pk__in=ids(jobs)).update(next_attempt_at=timezone.now())
    assert jobs_send(job_ids=ids(jobs)) == dict.fromkeys(ids(jobs), Status.SENT)
    assert calls(clean_sandbox, "ses") == 2  # the batch again, in one bulk call
    for job in jobs:
        assert outcomes(job) == [("ses", "transient"), ("ses", "accepted")]
    assert quota_used(ses) == 4


def test_with_batches_off_every_message_is_its_own_send_email(ses, clean_sandbox, settings):
    settings.GPMAS_SES_BATCH_SIZE = 1
    jobs = [new_job() for _ in range(4)]

    assert set(jobs_send(job_ids=ids(jobs)).values()) == {Status.SENT}

    assert calls(clean_sandbox, "ses") == 4


# --- The adapter against the emulator ---------------------------------------------------------


def message(n: int, **fields) -> OutgoingMessage:
    return OutgoingMessage(
        to_email=fields.pop("to_email", f"g{n}@example.com"),
        from_email="GPMAS <invitations@gpmas.local>",
        subject=f"Invitation {n}",
        text_body=f"Open https://gpmas.example/i/{n}",
        html_body=f"<p>Open https://gpmas.example/i/{n}</p>",
        headers={JOB_HEADER: str(n), "List-Unsubscribe": f"<https://gpmas.example/u/{n}>"},
        **fields,
    )


def test_send_batch_answers_each_message_with_its_own_id(ses, clean_sandbox):
    adapter = connections.adapter_for(ses)
    messages = [message(1), message(2), message(3)]

    answers = adapter.send_batch(messages)

    copies = {m.job: m for m in clean_sandbox.inbox.messages("ses")}
    assert answers == [copies[str(n)].provider_message_id for n in (1, 2, 3)]


def test_send_batch_returns_a_rejected_entry_as_its_error(ses, clean_sandbox):
    answers = connections.adapter_for(ses).send_batch(
        [message(1), message(2, to_email="rejected@example.com")]
    )

    assert isinstance(answers[0], str) and answers[0]
    assert isinstance(answers[1], SendError)
    assert answers[1].error_class == ErrorClass.RECIPIENT_REJECTED
    assert answers[1].code == "MESSAGE_REJECTED"


def test_send_batch_raises_when_no_entry_was_taken(ses, clean_sandbox):
    with pytest.raises(SendError) as caught:
        connections.adapter_for(ses).send_batch(
            [message(1, to_email="rejected@a.example"), message(2, to_email="rejected@b.example")]
        )
    assert caught.value.error_class == ErrorClass.RECIPIENT_REJECTED


@pytest.mark.parametrize(
    ("fault", "error_class"),
    [
        (Fault(status=500), ErrorClass.TRANSIENT),
        (Fault(status=429, code="TooManyRequestsException"), ErrorClass.TRANSIENT),
        (Fault(status=400, code="Throttling"), ErrorClass.RATE_LIMITED),
        (Fault(status=400, code="SendingPausedException"), ErrorClass.PROVIDER_ERROR),
        (Fault(status=400, code="MessageRejected"), ErrorClass.RECIPIENT_REJECTED),
    ],
    ids=lambda v: v.code or str(v.status) if isinstance(v, Fault) else None,
)
def test_a_faulted_bulk_call_raises_its_error_class(ses, clean_sandbox, fault, error_class):
    clean_sandbox.faults.set("ses", fault)
    with pytest.raises(SendError) as caught:
        connections.adapter_for(ses).send_batch([message(1), message(2)])
    assert caught.value.error_class == error_class
    assert clean_sandbox.inbox.messages("ses") == []


def test_an_unverified_sender_is_a_provider_error(ses, clean_sandbox):
    stranger = [
        OutgoingMessage(**{**message(n).__dict__, "from_email": "x@unverified.test"})
        for n in (1, 2)
    ]
    with pytest.raises(SendError) as caught:
        connections.adapter_for(ses).send_batch(stranger)
    assert caught.value.error_class == ErrorClass.PROVIDER_ERROR


def test_the_attempts_of_a_bulk_call_share_its_timing(ses, clean_sandbox):
    jobs = [new_job() for _ in range(3)]
    jobs_send(job_ids=ids(jobs))
    attempts = DeliveryAttempt.objects.filter(job__in=jobs)
    assert len({(a.started_at, a.duration_ms) for a in attempts}) == 1


def test_a_bulk_call_carries_no_more_recipients_than_the_rate_allows(providers, clean_sandbox):
    """SES counts recipients per second: a call of 25 could never reserve a rate of 10, so the
    calls are cut to the rate; what each second allows goes, the rest waits."""
    ses = only("ses", daily_quota=1000)
    Provider.objects.filter(pk=ses.pk).update(max_per_second=10)
    jobs = [new_job() for _ in range(25)]

    results = jobs_send(job_ids=ids(jobs))

    sent = [pk for pk in ids(jobs) if results[pk] == Status.SENT]
    assert set(results.values()) <= {Status.SENT, Status.QUEUED}
    calls_by_start = Counter(
        DeliveryAttempt.objects.filter(job__in=jobs).values_list("started_at", flat=True)
    )
    assert max(calls_by_start.values()) == 10  # bulk calls, each the rate's 10 recipients
    assert (
        sum(calls_by_start.values()) == len(sent) == clean_sandbox.inbox.stats()["ses"]["messages"]
    )


@pytest.mark.parametrize(
    ("fields", "batched"),
    [
        ({}, True),
        ({"headers": {f"X-H{i}": "v" for i in range(15)}}, True),
        ({"headers": {f"X-H{i}": "v" for i in range(16)}}, False),  # SES: 15 headers a message
        ({"headers": {"X-" + "n" * 124: "v"}}, True),
        ({"headers": {"X-" + "n" * 125: "v"}}, False),  # a name of 127 characters
        ({"headers": {"X-Long": "v" * 995}}, True),
        ({"headers": {"X-Long": "v" * 996}}, False),
        ({"headers": {"X-Empty": ""}}, False),
        ({"subject": "Closing }} braces"}, False),
        ({"html_body": "<p>{{guest}}</p>"}, False),
        ({"headers": {"X-Tag": "{{x}}"}}, False),
        ({"ics": ICS}, False),
    ],
)
def test_what_a_bulk_entry_can_carry(ses, fields, batched):
    adapter = connections.adapter_for(ses)
    base = {
        "to_email": "a@example.com",
        "from_email": "GPMAS <invitations@gpmas.local>",
        "subject": "Invitation",
        "text_body": "Hello",
        "html_body": "<p>Hello</p>",
    }
    assert (adapter.batch_key(OutgoingMessage(**{**base, **fields})) is not None) is batched
