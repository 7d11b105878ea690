"""A worker process's call slots (``delivery.inflight``): taken for each call, given back
whatever happens, never more than the bound."""

import pytest
from django.db import OperationalError

from delivery import freshness, inflight
from delivery.models import EmailJob
from delivery.sending import jobs_send
from tests.delivery.sendpath import ICS, ids, new_job
from tests.processes import wait_for

pytestmark = pytest.mark.django_db


def free_slots() -> int:
    return inflight.slots()._free._value


def test_a_database_error_before_a_call_gives_its_slot_back(
    sendgrid, clean_sandbox, settings, monkeypatch
):
    settings.GPMAS_CALLS_IN_FLIGHT = 2
    reads = {"n": 0}
    real = freshness.is_halted

    def is_halted():
        reads["n"] += 1
        if reads["n"] == 2:  # the check before the first call (after the one before the claim)
            raise OperationalError("server closed the connection unexpectedly")
        return real()

    monkeypatch.setattr(freshness, "is_halted", is_halted)
    jobs = [new_job(ics=ICS) for _ in range(3)]
    with pytest.raises(OperationalError):
        jobs_send(job_ids=ids(jobs))
    # Both: the failed start's at once, the first job's when its call (still in flight when
    # the error came) ends; a slot not given back would be lost for the process's life.
    wait_for(lambda: free_slots() == 2, timeout=10, message="both call slots free")

    monkeypatch.setattr(freshness, "is_halted", real)
    later = [new_job(ics=ICS) for _ in range(2)]
    assert set(jobs_send(job_ids=ids(later)).values()) == {EmailJob.Status.SENT}
    assert free_slots() == 2
