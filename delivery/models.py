"""The outbox (EmailJob), its attempts, and the configured providers. docs/architecture.md "Data",
docs/job-states.md.

Models hold facts about one row. Status changes happen only in ``delivery.outbox``.
"""

import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q


class ProviderKind(models.TextChoices):
    """Every kind of provider GPMAS can send through: the one list (each has an adapter)."""

    SENDGRID = "sendgrid", "SendGrid"
    SES = "ses", "Amazon SES"
    MAILGUN = "mailgun", "Mailgun"
    SMTP = "smtp", "SMTP"
    CONSOLE = "console", "Console (development)"


class Provider(models.Model):
    Kind = ProviderKind

    name = models.SlugField(
        unique=True, help_text="Also names its secrets: GPMAS_PROVIDER_<NAME>_…"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    enabled = models.BooleanField(default=True)
    weight = models.PositiveIntegerField(
        default=1, help_text="Share of traffic. 0 = standby: used only when no other can send."
    )
    daily_quota = models.PositiveIntegerField(
        null=True, blank=True, help_text="Recipients per day; empty = unlimited."
    )
    quota_reset_tz = models.CharField(max_length=64, default="UTC")
    max_per_second = models.PositiveIntegerField(
        null=True, blank=True, help_text="Recipients per second (SES sending rate); empty = none."
    )
    api_base_url = models.URLField(
        blank=True, help_text="API base URL or endpoint; empty = the provider's public API."
    )
    region = models.CharField(max_length=32, blank=True, help_text="SES region.")
    domain = models.CharField(max_length=255, blank=True, help_text="Mailgun sending domain.")
    host = models.CharField(max_length=255, blank=True, help_text="SMTP host.")
    port = models.PositiveIntegerField(null=True, blank=True, help_text="SMTP port.")
    use_tls = models.BooleanField(default=False, help_text="SMTP STARTTLS.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-weight", "name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=ProviderKind.values),
                name="provider_kind_known",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    def clean(self) -> None:
        from delivery.providers import provider_config_errors

        try:
            zoneinfo.ZoneInfo(self.quota_reset_tz)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValidationError({"quota_reset_tz": "Not a known IANA time zone."}) from None
        errors = provider_config_errors(self)
        if errors:
            raise ValidationError(errors)


TERMINAL = ["sent", "failed", "cancelled", "suppressed"]


class EmailJob(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        SENDING = "sending"
        RETRYING = "retrying"
        SENT = "sent"
        FAILED = "failed"
        CANCELLED = "cancelled"
        # Not sent: the address is on the suppression list (delivery.suppression).
        SUPPRESSED = "suppressed"

    class DeliveryState(models.TextChoices):
        """What the provider's events say happened after it accepted the message (higher in
        ``delivery.delivery_state.RANK`` wins)."""

        NONE = "", "no event yet"
        DEFERRED = "deferred"
        DELIVERED = "delivered"
        BOUNCED_SOFT = "bounced_soft", "bounced (soft)"
        BOUNCED_HARD = "bounced_hard", "bounced (hard)"
        UNSUBSCRIBED = "unsubscribed"
        COMPLAINED = "complained"

    class Kind(models.TextChoices):
        INVITATION = "invitation"
        CONFIRMATION = "confirmation"
        WAITLIST = "waitlist"
        PROMOTION = "promotion"
        UPDATE = "update"
        CANCELLATION = "cancellation"
        REMINDER = "reminder"
        TEST = "test"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    topic = models.CharField(max_length=100, blank=True, db_index=True)
    to_email = models.EmailField(max_length=254)
    from_email = models.CharField(max_length=320)
    subject = models.CharField(max_length=255)
    text_body = models.TextField()
    html_body = models.TextField(blank=True)
    headers = models.JSONField(default=dict, blank=True)
    ics = models.TextField(blank=True)
    idempotency_key = models.CharField(max_length=200, unique=True)
    # Send only through this provider (test emails that check one provider); null = any.
    pinned_provider = models.ForeignKey(
        Provider, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField()
    not_before = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField()
    dispatched_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    provider = models.ForeignKey(
        Provider, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    provider_message_id = models.CharField(max_length=255, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Written only by delivery.delivery_state, from the providers' events.
    delivery_state = models.CharField(
        max_length=16, choices=DeliveryState.choices, default="", blank=True
    )
    delivery_state_at = models.DateTimeField(null=True, blank=True)
    # Whose list this email is on (invitations and reminders): an address that unsubscribed from
    # this organizer does not get it (delivery.unsubscribe). Null: an unsubscribe does not stop it.
    list_owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="emailjob_due")]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=TERMINAL + ["queued", "sending", "retrying"]),
                name="emailjob_status_known",
            ),
            # docs/job-states.md: a terminal job has finished_at; a sending job holds a lease.
            models.CheckConstraint(
                condition=Q(status__in=TERMINAL, finished_at__isnull=False)
                | Q(status__in=["queued", "sending", "retrying"], finished_at__isnull=True),
                name="emailjob_finished_iff_terminal",
            ),
            models.CheckConstraint(
                condition=~Q(status="sending") | Q(lease_expires_at__isnull=False),
                name="emailjob_sending_has_lease",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind} to {self.to_email} ({self.status})"


class DeliveryAttempt(models.Model):
    """One call to one provider for one job. Append-only."""

    class Outcome(models.TextChoices):
        ACCEPTED = "accepted"
        TRANSIENT = "transient"
        RATE_LIMITED = "rate_limited"
        PROVIDER_ERROR = "provider_error"
        RECIPIENT_REJECTED = "recipient_rejected"
        UNKNOWN = "unknown"

    job = models.ForeignKey(EmailJob, on_delete=models.CASCADE, related_name="attempts_log")
    provider = models.ForeignKey(
        Provider, null=True, on_delete=models.SET_NULL, related_name="attempts"
    )
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(default=0)
    outcome = models.CharField(max_length=20, choices=Outcome.choices)
    error_code = models.CharField(max_length=100, blank=True)
    error_message = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["started_at"], name="attempt_started")]

    def __str__(self) -> str:
        return f"job {self.job_id} via {self.provider_id}: {self.outcome}"


# The providers' events and the suppression list (docs/architecture.md, "Delivery events").
from delivery.event_models import (  # noqa: E402
    DeliveryEvent,
    Suppression,
    SuppressionAudit,
    Unsubscribe,
)

__all__ = [
    "DeliveryAttempt",
    "DeliveryEvent",
    "EmailJob",
    "Provider",
    "ProviderKind",
    "Suppression",
    "SuppressionAudit",
    "Unsubscribe",
]
