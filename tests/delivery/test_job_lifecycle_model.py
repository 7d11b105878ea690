"""A Hypothesis state machine over the job lifecycle (docs/job-states.md).

Workers claim, send, fail, crash and get duplicate deliveries; the clock jumps; the drain
reconciles; events are deleted; sending halts and resumes. After every step: each job is in one
known state, terminal states never change, attempts never exceed the maximum, a job is either
terminal, due at a known time or held under a lease, and no job is accepted by a provider twice
except through the crash window (a provider accepted, then the worker died before recording it).
"""

import datetime as dt
from collections import Counter

import pytest
from django.db.models import F
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from delivery import outbox
from delivery.models import EmailJob
from delivery.services import email_jobs_cancel
from reliability.models import SystemControl
from tests.delivery.jobs import claim, mark_sent, new_job

MAX_ATTEMPTS = 3
Status = EmailJob.Status
TERMINAL = {Status.SENT, Status.FAILED, Status.CANCELLED}


class JobLifecycle(RuleBasedStateMachine):
    jobs = Bundle("jobs")

    @initialize()
    def clean_slate(self):
        EmailJob.objects.all().delete()
        SystemControl.objects.all().delete()
        self.holders: dict[int, EmailJob] = {}  # job id -> the worker's claimed copy
        self.seen_terminal: dict[int, str] = {}
        self.acceptances = Counter()
        self.crash_window: set[int] = set()
        self.reported: set[int] = set()  # the provider's event for the job arrived
        self.halted = False
        self.serial = 0

    # --- the outside world ----------------------------------------------------------------
    @rule(target=jobs, topic=st.sampled_from(["event:1", "event:2"]))
    def enqueue(self, topic):
        self.serial += 1
        job = new_job(
            to_email=f"g{self.serial}@example.com",
            topic=topic,
        )
        EmailJob.objects.filter(pk=job.pk).update(max_attempts=MAX_ATTEMPTS)
        return job.pk

    @rule(topic=st.sampled_from(["event:1", "event:2"]))
    def delete_event(self, topic):
        email_jobs_cancel(topic=topic, reason="event deleted")

    @rule(seconds=st.sampled_from([1, 30, 400, 4000]))
    def clock_advances(self, seconds):
        """Moving every stored time back is the clock moving forward."""
        delta = dt.timedelta(seconds=seconds)
        jobs = EmailJob.objects.all()
        jobs.update(
            next_attempt_at=F("next_attempt_at") - delta, created_at=F("created_at") - delta
        )
        jobs.exclude(lease_expires_at=None).update(lease_expires_at=F("lease_expires_at") - delta)

    @rule()
    def drain_reconciles(self):
        outbox.reconcile_expired_leases()

    @rule()
    def halt(self):
        SystemControl.objects.update_or_create(pk=1, defaults={"halted": True})
        self.halted = True

    @rule()
    def resume(self):
        SystemControl.objects.filter(pk=1).update(halted=False)
        self.halted = False

    # --- workers --------------------------------------------------------------------------
    @precondition(lambda self: not self.halted)
    @rule(job_id=jobs)
    def worker_claims(self, job_id):
        claimed = claim(job_id)
        if claimed is not None:
            self.holders[job_id] = claimed

    @rule(job_id=jobs)
    def broker_delivers_the_message_again(self, job_id):
        job = EmailJob.objects.get(pk=job_id)
        lease_running = job.status == Status.SENDING and job.lease_expires_at > outbox_now()
        claimed = claim(job_id)
        if lease_running:
            assert claimed is None, "a job under a running lease was claimed twice"
        if claimed is not None:
            self.holders[job_id] = claimed

    def _holder(self, job_id):
        return self.holders.pop(job_id, None)

    @rule(job_id=jobs)
    def provider_accepts(self, job_id):
        holder = self._holder(job_id)
        if holder is not None and mark_sent(holder):
            assert job_id not in self.reported, "a job its provider reported was sent again"
            self.acceptances[job_id] += 1

    @precondition(lambda self: self.crash_window)
    @rule(data=st.data())
    def the_provider_reports_what_it_took(self, data):
        """An event for a job accepted in the crash window (the worker died before writing it):
        the job becomes sent, whether still leased or already waiting, unless it is terminal."""
        job_id = data.draw(st.sampled_from(sorted(self.crash_window)))
        before = EmailJob.objects.get(pk=job_id).status
        outbox.record_sent_by_event(job_id, message_id="")
        after = EmailJob.objects.get(pk=job_id).status
        assert after == (before if before in TERMINAL else Status.SENT)
        if after == Status.SENT:
            self.reported.add(job_id)

    @rule(job_id=jobs)
    def provider_fails_transiently(self, job_id):
        holder = self._holder(job_id)
        if holder is not None:
            outbox.schedule_retry(holder, error="HTTP 503")

    @precondition(lambda self: not self.halted)
    @rule(job_id=jobs)
    def a_whole_failed_attempt_once_due(self, job_id):
        """Backoff passes, a worker claims the job, every provider fails: the common loop."""
        EmailJob.objects.filter(pk=job_id, status__in=outbox.WAITING).update(
            next_attempt_at=outbox_now()
        )
        self.worker_claims(job_id)
        self.provider_fails_transiently(job_id)

    @rule(job_id=jobs)
    def recipient_rejected(self, job_id):
        holder = self._holder(job_id)
        if holder is not None:
            outbox.mark_failed(holder, error="550")

    @rule(job_id=jobs)
    def worker_dies(self, job_id):
        self._holder(job_id)  # the lease stays until the drain reconciles it

    @rule(job_id=jobs)
    def worker_dies_after_the_provider_accepted(self, job_id):
        if self._holder(job_id) is not None:
            self.acceptances[job_id] += 1
            self.crash_window.add(job_id)

    @precondition(lambda self: self.halted)
    @rule(job_id=jobs)
    def halt_seen_before_the_provider_call(self, job_id):
        holder = self._holder(job_id)
        if holder is not None:
            before = holder.attempts
            if outbox.release_many([holder], due_at=outbox_now(), reason="halted"):
                assert EmailJob.objects.get(pk=job_id).attempts == before - 1

    # --- invariants -----------------------------------------------------------------------
    @invariant()
    def every_job_is_terminal_due_or_leased(self):
        for job in EmailJob.objects.all():
            assert job.status in Status.values
            if job.status in TERMINAL:
                assert job.finished_at is not None
            elif job.status == Status.SENDING:
                assert job.lease_expires_at is not None
            else:
                assert job.next_attempt_at is not None

    @invariant()
    def terminal_states_never_change(self):
        for job_id, status in EmailJob.objects.values_list("pk", "status"):
            if job_id in self.seen_terminal:
                assert status == self.seen_terminal[job_id]
            elif status in TERMINAL:
                self.seen_terminal[job_id] = status

    @invariant()
    def attempts_never_exceed_the_maximum(self):
        assert all(n <= MAX_ATTEMPTS for n in EmailJob.objects.values_list("attempts", flat=True))

    @invariant()
    def one_acceptance_per_job_outside_the_crash_window(self):
        for job_id, count in self.acceptances.items():
            assert count == 1 or job_id in self.crash_window


def outbox_now():
    from django.utils import timezone

    return timezone.now()


@pytest.mark.django_db
def test_the_job_lifecycle_keeps_its_invariants():
    run_state_machine_as_test(
        JobLifecycle,
        settings=settings(
            max_examples=60,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )
