from django.conf import settings
from django.db import models


class SystemControl(models.Model):
    """The single row holding the halt switch (pk=1). Changed only through ``reliability.halt``."""

    halted = models.BooleanField(default=False)
    reason = models.TextField(blank=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    changed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "halt switch"
        verbose_name_plural = "halt switch"

    def __str__(self) -> str:
        return "halted" if self.halted else "sending"


class HaltAudit(models.Model):
    """Every change of the halt switch: who, when, why and from where. Append-only."""

    class Action(models.TextChoices):
        HALT = "halt"
        RESUME = "resume"

    action = models.CharField(max_length=8, choices=Action.choices)
    reason = models.TextField()
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    source = models.CharField(max_length=200, help_text="admin from <address>, command, …")
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "halt switch change"

    def __str__(self) -> str:
        return f"{self.action} at {self.at:%Y-%m-%d %H:%M:%S} ({self.source})"
