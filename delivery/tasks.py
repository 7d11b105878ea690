"""Celery tasks: take ids, call one service, hold no logic (docs/architecture.md)."""

from celery import shared_task

from delivery import dispatch, sending
from delivery.publishing import fail_fast_publisher


@shared_task(name="gpmas.delivery.drain", ignore_result=True)
def drain() -> None:
    drain_now()


@shared_task(name="gpmas.delivery.send_jobs", ignore_result=True)
def send_jobs(job_ids: list[int]) -> None:
    sending.jobs_send(job_ids=job_ids, hand_over=True)


def drain_now() -> dispatch.DrainReport:
    """One drain of the outbox, publishing due jobs to the workers (beat, nudges, commands),
    every batch over one broker connection."""
    with fail_fast_publisher(send_jobs) as publish_send_jobs:
        return dispatch.outbox_drain(publish=publish_send_jobs)
