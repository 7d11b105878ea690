"""The same events posted by several clients at once (a provider retrying while the first post
is still being handled): each event is stored once and applied once."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.test import Client

from delivery.models import DeliveryEvent, EmailJob, Suppression, SuppressionAudit
from tests.delivery.jobs import new_job
from tests.delivery.webhooks.posting import post_sendgrid, sendgrid_event

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
State = EmailJob.DeliveryState
CLIENTS = 8


def test_the_same_events_posted_at_once_are_stored_and_applied_once():
    jobs = [new_job(to_email=f"race{n}@example.com") for n in range(5)]
    events = [sendgrid_event(job, event="bounce", type="bounce") for job in jobs]
    statuses, start = [], threading.Barrier(CLIENTS)

    def post() -> None:
        try:
            start.wait(timeout=30)
            statuses.append(post_sendgrid(Client(), events).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert statuses == [200] * CLIENTS
    assert DeliveryEvent.objects.count() == len(events)
    assert Suppression.objects.count() == len(jobs)
    assert SuppressionAudit.objects.count() == len(jobs)
    assert set(EmailJob.objects.values_list("delivery_state", flat=True)) == {State.BOUNCED_HARD}
