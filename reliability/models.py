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
        verbose_name = "system control"

    def __str__(self) -> str:
        return "halted" if self.halted else "sending"
