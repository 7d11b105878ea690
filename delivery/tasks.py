"""Celery tasks: take ids, call one service, hold no logic (DESIGN.md §2)."""

from celery import shared_task

from delivery import dispatch, sending


@shared_task(name="gpmas.delivery.drain", ignore_result=True)
def drain() -> None:
    dispatch.outbox_drain()


@shared_task(name="gpmas.delivery.send_jobs", ignore_result=True)
def send_jobs(job_ids: list[int]) -> None:
    sending.jobs_send(job_ids=job_ids)
