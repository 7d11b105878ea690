"""Invitations (docs/architecture.md, "Data"): one per guest and event; the guest holds only the
raw token."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from delivery.models import EmailJob
from events.models import Event


class InvitationQuerySet(models.QuerySet):
    def live(self) -> InvitationQuerySet:
        """Invitations that still count: not revoked."""
        return self.filter(revoked_at__isnull=True)


class Invitation(models.Model):
    class Rsvp(models.TextChoices):
        PENDING = "pending", "Not answered"
        ACCEPTED = "accepted", "Accepted"
        DECLINED = "declined", "Declined"
        WAITLISTED = "waitlisted", "Waitlisted"

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField(max_length=254, help_text="Normalized: stripped, lower case.")
    name = models.CharField(max_length=200, blank=True)
    token_hash = models.CharField(max_length=64, unique=True)  # SHA-256 hex of the raw token
    rsvp = models.CharField(max_length=16, choices=Rsvp.choices, default=Rsvp.PENDING)
    # Accepted: seats held (1 + plus-ones). Waitlisted: seats asked for. Otherwise 1.
    party_size = models.PositiveSmallIntegerField(default=1)
    # +1 on every change of answer: names the confirmation a given answer sends, exactly once.
    response_version = models.PositiveIntegerField(default=0)
    responded_at = models.DateTimeField(null=True, blank=True)
    waitlisted_at = models.DateTimeField(null=True, blank=True)  # place in the waitlist
    revoked_at = models.DateTimeField(null=True, blank=True)
    email_job = models.ForeignKey(
        EmailJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The latest email about the guest's answer (confirmation, waitlist, promotion): cancelled
    # while still waiting when the answer changes, so a stale "you're going" never goes out.
    answer_job = models.ForeignKey(
        EmailJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reminder_job = models.ForeignKey(
        EmailJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = InvitationQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["event", "rsvp"], name="invitation_event_rsvp"),
            models.Index(fields=["event", "waitlisted_at"], name="invitation_waitlist"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["event", "email"],
                condition=Q(revoked_at__isnull=True),
                name="invitation_one_live_per_email",
            ),
            models.CheckConstraint(
                condition=Q(party_size__gte=1), name="invitation_party_size_positive"
            ),
            models.CheckConstraint(
                condition=Q(rsvp__in=["pending", "accepted", "declined", "waitlisted"]),
                name="invitation_rsvp_known",
            ),
            models.CheckConstraint(
                condition=Q(rsvp="waitlisted", waitlisted_at__isnull=False)
                | (~Q(rsvp="waitlisted") & Q(waitlisted_at__isnull=True)),
                name="invitation_waitlisted_has_place",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.display_name} for event {self.event_id}"

    @property
    def display_name(self) -> str:
        return self.name or self.email

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def seats_held(self) -> int:
        """Seats this guest takes up now: the whole party once accepted, none otherwise."""
        return self.party_size if self.rsvp == self.Rsvp.ACCEPTED else 0

    @property
    def calendar_uid(self) -> str:
        """Stable per event and guest, so updates and cancellations replace the same entry."""
        return f"event-{self.event_id}-inv-{self.pk}@gpmas"


class RetiredToken(models.Model):
    """The hash of a link that no longer works, so its guest gets 410 and a reason, not 404.

    Kept when a link is replaced (resend) or its event deleted; holds no personal data.
    """

    class Reason(models.TextChoices):
        REPLACED = "replaced"
        EVENT_DELETED = "event_deleted"

    token_hash = models.CharField(max_length=64, unique=True)
    reason = models.CharField(max_length=16, choices=Reason.choices)
    retired_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.token_hash[:8]}… ({self.reason})"
