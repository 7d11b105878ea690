"""Each provider's bounce and complaint rates over the last 24 hours, against the thresholds
at which mailbox providers and Amazon SES act: the one computation behind the provider health
page and ``gpmas status`` (``/healthz`` stays about sending).

A rate is per message the provider took in the window (its accepted attempts) and counts
messages, not events: a job with two bounce events is one bounce. Bounces are the permanent ones
(the address does not exist), as SES counts its bounce rate; soft bounces and deferrals are not.
Events are attributed to the provider the job was sent through; events matching no job are in
``gpmas status``'s unmatched count, not in any provider's rate.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Count, Q
from django.utils import timezone

from delivery.models import DeliveryAttempt, DeliveryEvent, EmailJob

State = EmailJob.DeliveryState
HOURS = 24
# Amazon SES puts an account under review at these rates (and may pause it beyond).
SES_BOUNCE_REVIEW = 0.05
SES_COMPLAINT_REVIEW = 0.001
# Gmail and Yahoo's bulk-sender rule: a spam rate above this gets mail rejected.
BULK_SPAM_LIMIT = 0.003
NOTE = (
    "Bounces: addresses that do not exist; complaints: recipients who marked the email as spam; "
    "each per message the provider took in the last 24 h. Amazon SES reviews an account at a "
    "5 % bounce rate or a 0.1 % complaint rate; Gmail and Yahoo reject bulk mail above a 0.3 % "
    "spam rate."
)


@dataclass(frozen=True)
class Reputation:
    sent: int = 0
    bounces: int = 0
    complaints: int = 0

    @property
    def bounce_rate(self) -> float | None:
        return self.bounces / self.sent if self.sent else None

    @property
    def complaint_rate(self) -> float | None:
        return self.complaints / self.sent if self.sent else None

    def warnings(self) -> list[str]:
        """What is over a threshold, in words; empty when nothing is."""
        found = []
        if self.bounce_rate is not None and self.bounce_rate >= SES_BOUNCE_REVIEW:
            found.append("bounce rate over SES's review threshold (5 %)")
        if self.complaint_rate is not None and self.complaint_rate >= SES_COMPLAINT_REVIEW:
            found.append("complaint rate over SES's review threshold (0.1 %)")
        if self.complaint_rate is not None and self.complaint_rate >= BULK_SPAM_LIMIT:
            found.append("complaint rate over Gmail and Yahoo's spam limit (0.3 %)")
        return found

    def bounce_text(self) -> str:
        return _rate_text(self.bounces, self.sent, self.bounce_rate)

    def complaint_text(self) -> str:
        return _rate_text(self.complaints, self.sent, self.complaint_rate)


def _rate_text(count: int, sent: int, rate: float | None) -> str:
    """``3 of 120 sent (2.50 %)``, or ``3, none sent`` when there is nothing to divide by."""
    if rate is None:
        return f"{count}, none sent"
    return f"{count} of {sent} sent ({rate * 100:.2f} %)"


def reputations(*, hours: int = HOURS, now: dt.datetime | None = None) -> dict[int, Reputation]:
    """Per provider id, its messages taken, bounces and complaints over the last ``hours``.
    Two aggregate queries; a provider with none of them is left out (read it as zeros)."""
    since = (now or timezone.now()) - dt.timedelta(hours=hours)
    sent = dict(
        DeliveryAttempt.objects.filter(
            started_at__gte=since,
            outcome=DeliveryAttempt.Outcome.ACCEPTED,
            provider__isnull=False,
        )
        .values_list("provider_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    events = (
        DeliveryEvent.objects.filter(received_at__gte=since, job__provider__isnull=False)
        .values_list("job__provider_id")
        .annotate(
            bounces=Count("job", distinct=True, filter=Q(outcome=State.BOUNCED_HARD)),
            complaints=Count("job", distinct=True, filter=Q(outcome=State.COMPLAINED)),
        )
        .order_by()
    )
    bad = {provider_id: (bounces, complaints) for provider_id, bounces, complaints in events}
    return {pk: Reputation(sent.get(pk, 0), *bad.get(pk, (0, 0))) for pk in set(sent) | set(bad)}
