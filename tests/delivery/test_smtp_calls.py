"""An SMTP call carries several messages over its session (delivery/providers/smtp.py,
``send_batch``): each answered on its own, a rejected recipient stopping only its message, any
other failure stopping the call, and no message started once the call has run its time."""

from __future__ import annotations

import pytest

from delivery.models import DeliveryAttempt, EmailJob
from delivery.providers import ErrorClass, SendError
from delivery.providers import smtp as smtp_adapter
from delivery.sending import jobs_send
from tests.delivery.sendpath import copies_of, ids, new_job, outcomes, quota_used

pytestmark = pytest.mark.django_db
Status = EmailJob.Status


def calls_made(jobs) -> int:
    """Provider calls, from the attempts: one call's attempts share its start."""
    return len(set(DeliveryAttempt.objects.filter(job__in=jobs).values_list("started_at")))


def failing(monkeypatch, at: dict[int, SendError]) -> None:
    """The adapter's ``send`` fails for the messages to the given guest numbers."""
    real = smtp_adapter.SmtpAdapter.send

    def send(self, message):
        number = int(message.to_email.removeprefix("guest").split("@")[0])
        if number in at:
            raise at[number]
        return real(self, message)

    monkeypatch.setattr(smtp_adapter.SmtpAdapter, "send", send)


def number(job: EmailJob) -> int:
    return int(job.to_email.removeprefix("guest").split("@")[0])


def test_several_messages_share_a_call_each_its_own_message(smtp, clean_sandbox):
    jobs = [new_job() for _ in range(8)]

    assert jobs_send(job_ids=ids(jobs)) == dict.fromkeys(ids(jobs), Status.SENT)

    assert calls_made(jobs) == 8 // smtp_adapter.MESSAGES_PER_CALL
    for job in jobs:
        [copy] = copies_of(clean_sandbox, job)
        assert copy.to == [job.to_email]
        assert outcomes(job) == [("smtp", "accepted")]
    ids_given = EmailJob.objects.filter(pk__in=ids(jobs)).values_list("provider_message_id")
    assert len(set(ids_given)) == 8  # each message its own Message-ID
    assert quota_used(smtp) == 8


def test_a_rejected_recipient_fails_alone_and_the_call_goes_on(smtp, clean_sandbox, monkeypatch):
    jobs = [new_job() for _ in range(4)]
    failing(monkeypatch, {number(jobs[1]): SendError(ErrorClass.RECIPIENT_REJECTED, "550 no")})

    results = jobs_send(job_ids=ids(jobs))

    assert results[jobs[1].pk] == Status.FAILED
    assert [results[j.pk] for j in (jobs[0], *jobs[2:])] == [Status.SENT] * 3
    assert calls_made(jobs) == 1
    assert quota_used(smtp) == 3  # the rejected one's was given back


def test_a_session_failure_stops_the_call_and_the_rest_go_alone(smtp, clean_sandbox, monkeypatch):
    jobs = [new_job() for _ in range(4)]
    failing(monkeypatch, {number(jobs[1]): SendError(ErrorClass.TRANSIENT, "451 later")})

    results = jobs_send(job_ids=ids(jobs))

    assert results[jobs[0].pk] == Status.SENT
    # The failed one goes on to its next provider (none here): retried after a backoff. The two
    # after it were never sent, so they go alone, and are sent.
    assert results[jobs[1].pk] == Status.RETRYING
    assert [results[j.pk] for j in jobs[2:]] == [Status.SENT] * 2
    for job in jobs[2:]:
        assert len(copies_of(clean_sandbox, job)) == 1
        assert [o for _, o in outcomes(job)] == ["transient", "accepted"]


def test_an_unknown_outcome_is_never_put_back_as_untried(smtp, clean_sandbox, monkeypatch):
    jobs = [new_job() for _ in range(4)]
    lost = SendError(ErrorClass.UNKNOWN, "no response", code="no_response")
    failing(monkeypatch, {number(jobs[2]): lost})

    results = jobs_send(job_ids=ids(jobs))

    # The provider may have it: not sent again within the batch (no other provider here).
    assert results[jobs[2].pk] == Status.RETRYING
    assert outcomes(jobs[2]) == [("smtp", "unknown")]
    assert [results[j.pk] for j in jobs[:2]] == [Status.SENT] * 2
    assert results[jobs[3].pk] == Status.SENT  # never sent in the call: it went alone
    # Four kept: the two sent, the unknown one (the relay may have it), and the last one's,
    # given back when the call did not send it and taken again when it went alone.
    assert quota_used(smtp) == 4


def test_no_message_starts_once_the_call_has_run_its_time(smtp, clean_sandbox, monkeypatch):
    monkeypatch.setattr(smtp_adapter, "CALL_SECONDS", 0)
    jobs = [new_job() for _ in range(4)]

    assert jobs_send(job_ids=ids(jobs)) == dict.fromkeys(ids(jobs), Status.SENT)

    # The batch call sent the first message only; the other three went alone afterwards.
    assert calls_made(jobs) == 4
    for job in jobs:
        assert len(copies_of(clean_sandbox, job)) == 1


def test_a_call_that_certainly_sent_nothing_fails_as_its_first_message(smtp, monkeypatch):
    from delivery import connections

    jobs = [new_job() for _ in range(3)]
    failing(
        monkeypatch,
        {number(job): SendError(ErrorClass.RECIPIENT_REJECTED, "550 no") for job in jobs},
    )
    adapter = connections.adapter_for(smtp)
    from delivery.calls import message_for

    with pytest.raises(SendError) as caught:
        adapter.send_batch([message_for(job) for job in jobs])
    assert caught.value.error_class == ErrorClass.RECIPIENT_REJECTED
