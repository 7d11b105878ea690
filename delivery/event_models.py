"""What the providers told us after sending (``DeliveryEvent``) and the addresses we no longer
mail (``Suppression``, with its audit log). docs/architecture.md, "Delivery events".

Rows are written by ``delivery.webhooks.events`` and ``delivery.suppression`` only; models.py
re-exports these classes, so ``delivery.models`` stays the one place to import models from.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q


class DeliveryEvent(models.Model):
    """One event a provider posted to a webhook, as anymail normalized it. Append-only: a
    provider's redelivery of the same event (same provider kind and event id) is not stored
    again and changes nothing."""

    provider_kind = models.CharField(max_length=16)
    event_id = models.CharField(max_length=255)
    kind = models.CharField(max_length=20, help_text="anymail's event type")
    # The delivery state the event stands for ("" for queued, opened, clicked, …).
    outcome = models.CharField(max_length=16, blank=True)
    recipient = models.CharField(max_length=254, blank=True, db_index=True)
    job = models.ForeignKey(
        "delivery.EmailJob",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="delivery_events",
    )
    provider_message_id = models.CharField(max_length=255, blank=True)
    description = models.TextField(blank=True)
    occurred_at = models.DateTimeField(null=True, blank=True)
    raw = models.JSONField(default=dict)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider_kind", "event_id"], name="deliveryevent_once"
            ),
        ]
        indexes = [models.Index(fields=["recipient", "occurred_at"], name="deliveryevent_rcpt")]

    def __str__(self) -> str:
        return f"{self.provider_kind} {self.kind} for {self.recipient or '?'} (job {self.job_id})"


class Suppression(models.Model):
    """An address GPMAS sends nothing more to (lower-cased). At most one unlifted row per
    address; it stops applying once ``expires_at`` has passed or it was lifted."""

    class Reason(models.TextChoices):
        HARD_BOUNCE = "hard_bounce", "hard bounce"
        SOFT_BOUNCES = "soft_bounces", "soft bounces in a row"
        COMPLAINT = "complaint", "spam complaint"

    address = models.CharField(max_length=254)
    reason = models.CharField(max_length=16, choices=Reason.choices)
    source_event = models.ForeignKey(
        DeliveryEvent, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="empty: never")
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["address"],
                condition=Q(lifted_at__isnull=True),
                name="suppression_one_unlifted",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.address} ({self.get_reason_display()})"


class SuppressionAudit(models.Model):
    """Every suppression added or lifted: who or what, when, why. Append-only."""

    class Action(models.TextChoices):
        SUPPRESS = "suppress"
        LIFT = "lift"

    action = models.CharField(max_length=8, choices=Action.choices)
    address = models.CharField(max_length=254)
    reason = models.TextField()
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    source = models.CharField(max_length=200, help_text="webhook <provider>, admin from …")
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "suppression change"

    def __str__(self) -> str:
        return f"{self.action} {self.address} at {self.at:%Y-%m-%d %H:%M:%S} ({self.source})"


class Unsubscribe(models.Model):
    """An address that asked for no more of one organizer's invitations and reminders (the
    one-click link, RFC 8058; ``delivery.unsubscribe``). The guest's own confirmations still go."""

    organizer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    address = models.EmailField(max_length=254, help_text="Lower-cased.")
    source = models.CharField(max_length=40, help_text="one-click (the mail client) or page")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organizer", "address"], name="unsubscribe_once_per_organizer"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.address} from organizer {self.organizer_id}"
