"""Helpers for the send-path tests: jobs with distinct recipients and bodies, what the emulators
received, and checks that a job went back to the queue untouched."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from delivery import provider_state
from delivery.models import DeliveryAttempt, EmailJob, Provider
from delivery.sending import jobs_send
from delivery.services import EmailDraft, email_enqueue

Status = EmailJob.Status
ICS = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//GPMAS//test//EN\r\nMETHOD:REQUEST\r\n"
    "BEGIN:VEVENT\r\nUID:e1@gpmas.local\r\nSUMMARY:Party\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)
OTHER_SENDER = "Other Team <other@gpmas.local>"
REDIS_DOWN = dt.timedelta(seconds=5)  # how long jobs wait when provider state is unreachable


def only(kind: str, *, daily_quota: int | None = None) -> Provider:
    """Disable every sandbox provider but ``kind``; return its row as the send path reads it."""
    Provider.objects.exclude(kind=kind).update(enabled=False)
    Provider.objects.filter(kind=kind).update(enabled=True, daily_quota=daily_quota)
    return Provider.objects.get(kind=kind)


_counter = iter(range(1, 1_000_000))


def new_job(**overrides) -> EmailJob:
    n = next(_counter)
    fields = {
        "kind": "test",
        "to_email": f"guest{n}@example.com",
        "subject": f"Invitation {n}",
        "text_body": f"Hello guest {n}, open https://gpmas.example/i/{n}",
        "html_body": f"<p>Hello <b>guest {n}</b></p>",
        "headers": {"X-Guest": str(n)},
    }
    [job] = email_enqueue([EmailDraft(**{**fields, **overrides})])
    return job


def ids(jobs: list[EmailJob]) -> list[int]:
    return [job.pk for job in jobs]


def calls(sandbox, kind: str = "sendgrid") -> int:
    return sandbox.inbox.stats()[kind]["calls"]


def outcomes(job: EmailJob) -> list[tuple[str, str]]:
    attempts = DeliveryAttempt.objects.filter(job=job).order_by("id")
    return [(a.provider.kind if a.provider else "", a.outcome) for a in attempts]


def quota_used(provider: Provider) -> int:
    return provider_state.read_views([provider], at=provider_state.now())[provider.pk].quota_used


def copies_of(sandbox, job: EmailJob):
    return sandbox.inbox.messages(job=str(job.pk))


Window = tuple[dt.datetime, dt.datetime]


def timed_send(job_ids: list[int]) -> tuple[dict[int, str], Window]:
    """``jobs_send`` and the time window it ran in."""
    before = timezone.now()
    results = jobs_send(job_ids=job_ids)
    return results, (before, timezone.now())


def assert_put_back(
    jobs: list[EmailJob], window: Window, *, later_by=dt.timedelta(0), reason: str = ""
) -> None:
    """Back in the queue as if never claimed, due ``later_by`` after they were put back."""
    for job in jobs:
        job.refresh_from_db()
        assert (job.status, job.attempts, job.lease_expires_at) == (Status.QUEUED, 0, None)
        assert window[0] + later_by <= job.next_attempt_at <= window[1] + later_by
        if reason:
            assert job.last_error == reason
        assert not DeliveryAttempt.objects.filter(job=job).exists()
