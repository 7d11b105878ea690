"""SMTP connections outlive a batch: one session per call slot, kept across batches, checked
after idling. With one slot the call runs on the worker's own thread, whose adapter the tests
can look at; with several, each slot's thread has a session of its own."""

from __future__ import annotations

import smtplib
import socket
import threading

import pytest

from delivery import connections
from delivery.models import DeliveryAttempt, EmailJob
from delivery.providers import smtp as smtp_adapter
from delivery.sending import jobs_send
from sandbox import Fault
from tests.delivery.sendpath import ICS, copies_of, ids, new_job, outcomes

pytestmark = pytest.mark.django_db
Status = EmailJob.Status


# --- SMTP: one connection across batches -----------------------------------------------------


@pytest.fixture
def one_slot(settings):
    settings.GPMAS_CALLS_IN_FLIGHT = 1


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


def test_smtp_keeps_one_connection_across_batches(smtp, clean_sandbox, smtp_sessions, one_slot):
    first, second = [new_job() for _ in range(2)], [new_job() for _ in range(2)]

    assert set(jobs_send(job_ids=ids(first)).values()) == {Status.SENT}
    held = connections.adapter_for(smtp).connection
    assert set(jobs_send(job_ids=ids(second)).values()) == {Status.SENT}

    assert connections.adapter_for(smtp).connection is held is not None
    assert smtp_sessions == {"connects": 1, "logins": 1}
    assert len(clean_sandbox.inbox.messages("smtp")) == 4


def test_an_idle_connection_that_still_answers_noop_is_reused(
    smtp, clean_sandbox, smtp_sessions, one_slot
):
    jobs_send(job_ids=[new_job().pk])
    adapter = connections.adapter_for(smtp)
    held = adapter.connection
    adapter.last_used -= smtp_adapter.CHECK_AFTER_IDLE_SECONDS + 1

    assert jobs_send(job_ids=[new_job().pk]) == {EmailJob.objects.latest("id").pk: Status.SENT}

    assert adapter.connection is held
    assert smtp_sessions["connects"] == 1


@pytest.mark.parametrize("how", ["closed", "shut down"])
def test_a_dead_idle_connection_is_reopened_before_it_carries_a_message(
    smtp, clean_sandbox, smtp_sessions, one_slot, how
):
    jobs_send(job_ids=[new_job().pk])
    adapter = connections.adapter_for(smtp)
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


def test_each_call_slot_keeps_its_own_session_across_batches(
    smtp, clean_sandbox, smtp_sessions, settings
):
    settings.GPMAS_CALLS_IN_FLIGHT = 4
    clean_sandbox.faults.set("smtp", Fault(latency_ms=50))  # long enough to fill every slot
    for _ in range(3):
        batch = [new_job() for _ in range(8)]
        assert set(jobs_send(job_ids=ids(batch)).values()) == {Status.SENT}

    assert 1 < smtp_sessions["connects"] <= 4  # one per slot, then reused
    assert smtp_sessions["logins"] == smtp_sessions["connects"]
    assert len(clean_sandbox.inbox.messages("smtp")) == 24


def test_a_worker_process_shutting_down_says_goodbye_on_every_slots_session(
    smtp, clean_sandbox, smtp_sessions, settings, monkeypatch
):
    from gpmas.celery import _close_provider_connections

    quits = []
    real_quit = smtplib.SMTP.quit
    monkeypatch.setattr(smtplib.SMTP, "quit", lambda self: quits.append(self) or real_quit(self))
    settings.GPMAS_CALLS_IN_FLIGHT = 4
    clean_sandbox.faults.set("smtp", Fault(latency_ms=50))
    assert set(jobs_send(job_ids=ids([new_job() for _ in range(8)])).values()) == {Status.SENT}

    _close_provider_connections()  # Celery's worker_process_shutdown signal

    assert len(quits) == smtp_sessions["connects"] > 1


def test_no_provider_holds_more_than_its_share_of_the_slots_while_another_can_take_the_message(
    providers, clean_sandbox, settings, monkeypatch
):
    """The bulkhead. Equal weights, four slots, four jobs at once, five times: without it, one
    provider would get three or four of the four calls in most rounds (10 in 16). The jobs carry
    a calendar, so none can share a Mailgun batch call: each is a call and takes a slot."""
    from delivery.models import Provider

    settings.GPMAS_CALLS_IN_FLIGHT = 4
    # One message per SMTP call too, so every job is a call of its own that takes a slot.
    monkeypatch.setattr(smtp_adapter.SmtpAdapter, "max_batch", 1)
    Provider.objects.exclude(kind__in=["mailgun", "smtp"]).update(enabled=False)
    Provider.objects.filter(kind__in=["mailgun", "smtp"]).update(weight=1)
    clean_sandbox.faults.set("mailgun", Fault(latency_ms=200))
    clean_sandbox.faults.set("smtp", Fault(latency_ms=200))
    for _ in range(5):
        jobs = [new_job(ics=ICS) for _ in range(4)]
        assert set(jobs_send(job_ids=ids(jobs)).values()) == {Status.SENT}
        kinds = DeliveryAttempt.objects.filter(job__in=jobs).values_list(
            "provider__kind", flat=True
        )
        assert sorted(kinds) == ["mailgun", "mailgun", "smtp", "smtp"]


def test_the_bulkhead_is_half_the_slots_or_the_providers_share_if_more():
    from delivery.inflight import CallSlots

    slots, release = CallSlots(4), threading.Event()
    try:
        for _ in range(2):  # two calls to provider 7 running
            assert slots.take()
            slots.start(lambda: release.wait(10), 7)
        assert slots.full_for(7, share=0.5) and slots.full_for(7, share=0.2)
        assert not slots.full_for(7, share=0.75)  # three of four for a 3:1 weight
        assert not slots.full_for(8, share=0.0)  # another provider: none running
        assert not CallSlots(1).full_for(7, share=0.0)  # one slot: nothing to keep free
    finally:
        release.set()
        slots.shutdown()
