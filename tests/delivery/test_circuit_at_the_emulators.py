"""Circuit breaking and quotas seen from the providers' side: calls counted at the emulators."""

from collections import Counter

import pytest

from delivery import provider_state
from delivery.models import EmailJob, Provider
from delivery.provider_view import CLOSED, HALF_OPEN, OPEN
from delivery.services import EmailDraft, email_enqueue
from delivery.tasks import drain_now
from sandbox import Fault
from tests.delivery.jobs import new_job
from tests.delivery.jobs import send_one as send
from tests.processes import CeleryWorker, wait_for

Status = EmailJob.Status


def send_one() -> EmailJob:
    job = new_job()
    send(job)
    return EmailJob.objects.select_related("provider").get(pk=job.pk)


def calls(sandbox, kind: str) -> int:
    return sandbox.inbox.stats().get(kind, {}).get("calls", 0)


def open_for_another_second(provider: Provider) -> bool:
    now = provider_state.now()
    view = provider_state.read_views([provider], at=now)[provider.pk]
    return view.circuit == OPEN and view.open_until - now > 1


def circuit(provider: Provider) -> str:
    return provider_state.read_views([provider], at=provider_state.now())[provider.pk].circuit


@pytest.mark.django_db
def test_a_failing_provider_is_cut_off_gets_nothing_while_open_then_one_probe(
    providers, clean_sandbox, settings
):
    settings.GPMAS_PENALTY_HALF_LIFE_SECONDS = 3600  # no decay to speak of within the test
    settings.GPMAS_OPEN_THRESHOLD = 95
    settings.GPMAS_BASE_OPEN_SECONDS = 3.0
    Provider.objects.exclude(kind__in=["sendgrid", "smtp"]).update(enabled=False)
    sendgrid = providers["sendgrid"]
    clean_sandbox.faults.set("sendgrid", Fault(status=503))

    sent_while_failing = []
    while circuit(sendgrid) != OPEN:
        sent_while_failing.append(send_one())
        assert len(sent_while_failing) < 60, "the circuit never opened"
    assert all(job.status == Status.SENT for job in sent_while_failing)  # failover, every time
    # 10 + 20 + 30 + 40 >= 95: four failures in a row open the circuit.
    assert calls(clean_sandbox, "sendgrid") == 4

    cut_off_at = calls(clean_sandbox, "sendgrid")
    sent_while_open = 0
    while open_for_another_second(sendgrid) and sent_while_open < 20:
        assert send_one().provider.kind == "smtp"
        sent_while_open += 1
    assert sent_while_open >= 5
    assert calls(clean_sandbox, "sendgrid") == cut_off_at  # zero calls while open

    clean_sandbox.faults.clear("sendgrid")  # the provider recovers
    wait_for(lambda: circuit(sendgrid) == HALF_OPEN, timeout=5, message="half-open")
    probe = send_one()
    assert probe.provider.kind == "sendgrid"  # the next message is the probe
    assert calls(clean_sandbox, "sendgrid") == cut_off_at + 1
    assert circuit(sendgrid) == CLOSED


@pytest.mark.django_db
def test_a_failed_probe_reopens_for_longer(providers, clean_sandbox, settings):
    settings.GPMAS_BASE_OPEN_SECONDS = 0.5
    Provider.objects.exclude(kind__in=["sendgrid", "smtp"]).update(enabled=False)
    sendgrid = providers["sendgrid"]
    clean_sandbox.faults.set("sendgrid", Fault(status=401))
    while circuit(sendgrid) != OPEN:  # one provider error opens it, once SendGrid is drawn
        send_one()
    first_open = provider_state.read_views([sendgrid], at=provider_state.now())[sendgrid.pk]
    wait_for(lambda: circuit(sendgrid) == HALF_OPEN, timeout=5, message="half-open")
    assert send_one().provider.kind == "smtp"  # the probe failed over
    again = provider_state.read_views([sendgrid], at=provider_state.now())[sendgrid.pk]
    assert again.circuit == OPEN
    assert again.times_opened == first_open.times_opened + 1


@pytest.mark.django_db
def test_a_429_with_retry_after_keeps_the_provider_out_until_then(providers, clean_sandbox):
    Provider.objects.exclude(kind__in=["sendgrid", "smtp"]).update(enabled=False)
    clean_sandbox.faults.set("sendgrid", Fault(status=429, retry_after=3600))
    while calls(clean_sandbox, "sendgrid") == 0:
        send_one()
    clean_sandbox.faults.clear("sendgrid")
    for _ in range(15):
        assert send_one().provider.kind == "smtp"
    assert calls(clean_sandbox, "sendgrid") == 1


@pytest.mark.django_db(transaction=True)
def test_two_workers_never_exceed_a_daily_quota(providers, clean_sandbox, tmp_path):
    Provider.objects.filter(kind="sendgrid").update(weight=3, daily_quota=25)
    Provider.objects.filter(kind="smtp").update(weight=1)
    Provider.objects.exclude(kind__in=["sendgrid", "smtp"]).update(enabled=False)
    workers = [CeleryWorker(name, tmp_path, concurrency=2).start() for name in ("a", "b")]
    try:
        email_enqueue(
            EmailDraft(kind="test", to_email=f"g{i}@example.com", subject="S", text_body="b")
            for i in range(80)
        )
        drain_now()
        wait_for(
            lambda: Counter(EmailJob.objects.values_list("status", flat=True)) == {"sent": 80},
            timeout=90,
            message="80 sent",
        )
    finally:
        for worker in workers:
            worker.stop()
    accepted = Counter(m.provider for m in clean_sandbox.inbox.messages())
    assert accepted == {"sendgrid": 25, "smtp": 55}
