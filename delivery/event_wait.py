"""Waiting for a provider's events before sending again (docs/job-states.md, "An unknown outcome
waits for the provider's events").

A call whose outcome is unknown (a timeout after the request went out, a task time limit, a
worker killed mid-call) may have delivered the message. A provider whose tracking webhook is
configured tells us within seconds if it took it, so the job is retried only after
``GPMAS_EVENT_WAIT_SECONDS``; any event for it meanwhile marks it sent without a second call
(``delivery.webhooks.events`` through ``outbox.record_sent_by_event``). A provider that posts no
events (SMTP, or a webhook not configured) gives nothing to wait for: the usual backoff applies.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings

from delivery.models import EmailJob, Provider

# Provider kind -> what its webhook needs besides basic auth (an ANYMAIL key or a setting).
WEBHOOK_KEY = {
    "sendgrid": "SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY",
    "mailgun": "MAILGUN_WEBHOOK_SIGNING_KEY",
    "ses": "GPMAS_SES_SNS_TOPIC_ARNS",
}
NO_WAIT = dt.timedelta(0)


def missing_webhook_settings(key_setting: str) -> list[str]:
    """The settings a webhook needs that are unset (it refuses every post until they are)."""
    anymail = getattr(settings, "ANYMAIL", {})
    names = ("WEBHOOK_SECRET", key_setting)
    return [name for name in names if not (anymail.get(name) or getattr(settings, name, None))]


def posts_events(kind: str) -> bool:
    """Whether providers of this kind can reach us with events (their webhook is configured)."""
    return kind in WEBHOOK_KEY and not missing_webhook_settings(WEBHOOK_KEY[kind])


def window() -> dt.timedelta:
    return dt.timedelta(seconds=settings.GPMAS_EVENT_WAIT_SECONDS)


def wait_after_call(provider: Provider) -> dt.timedelta:
    """How long a job whose call to ``provider`` ended with an unknown outcome waits."""
    return window() if posts_events(provider.kind) else NO_WAIT


def wait_after_lost_worker(jobs: list[EmailJob]) -> dict[int, dt.timedelta]:
    """How long each job of a worker that stopped mid-send waits, by job id.

    Which provider the worker was calling is not recorded (that would cost a write before every
    call), so a job waits if a provider that posts events could have had it: its pinned
    provider, or else any enabled one.
    """
    if not jobs or not window():  # most drain ticks: no query
        return dict.fromkeys((job.pk for job in jobs), NO_WAIT)
    kinds = set(Provider.objects.filter(enabled=True).values_list("kind", flat=True))
    any_posts = any(posts_events(kind) for kind in kinds)
    return {
        job.pk: window()
        if (posts_events(job.pinned_provider.kind) if job.pinned_provider_id else any_posts)
        else NO_WAIT
        for job in jobs
    }


def waiting_note(error: str, wait: dt.timedelta) -> str:
    """``last_error`` of a job waiting for events: what an operator sees in the admin."""
    if not wait:
        return error
    return (
        f"outcome unknown, waiting {int(wait.total_seconds())} s for the provider's events: {error}"
    )
