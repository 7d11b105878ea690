"""Best status wins: a job's delivery state only ever moves up, whatever order events come in."""

from __future__ import annotations

import itertools

import pytest
from django.utils import timezone

from delivery.delivery_state import RANK, record_delivery_state
from delivery.models import EmailJob
from tests.delivery.jobs import new_job
from tests.delivery.webhooks.posting import post_sendgrid, sendgrid_event

pytestmark = pytest.mark.django_db
State = EmailJob.DeliveryState


def test_delivered_after_bounced_stays_bounced(client):
    job = new_job()
    post_sendgrid(client, [sendgrid_event(job, event="bounce", type="bounce")])
    post_sendgrid(client, [sendgrid_event(job, event="delivered")])
    job.refresh_from_db()
    assert job.delivery_state == State.BOUNCED_HARD


def test_delivered_after_deferred_moves_up(client):
    job = new_job()
    post_sendgrid(client, [sendgrid_event(job, event="deferred")])
    job.refresh_from_db()
    assert job.delivery_state == State.DEFERRED
    post_sendgrid(client, [sendgrid_event(job, event="delivered")])
    job.refresh_from_db()
    assert job.delivery_state == State.DELIVERED


@pytest.mark.parametrize("order", list(itertools.permutations(list(State)[1:4])))
def test_any_order_ends_in_the_highest_state(order):
    job = new_job()
    for state in order:
        record_delivery_state(job.pk, state, at=timezone.now())
    job.refresh_from_db()
    assert job.delivery_state == max(order, key=RANK.__getitem__)


def test_a_write_below_the_current_state_changes_nothing():
    job = new_job()
    assert record_delivery_state(job.pk, State.COMPLAINED, at=timezone.now())
    stamped = EmailJob.objects.get(pk=job.pk).delivery_state_at
    for state in State:
        assert not record_delivery_state(job.pk, state, at=timezone.now())
    job.refresh_from_db()
    assert (job.delivery_state, job.delivery_state_at) == (State.COMPLAINED, stamped)
