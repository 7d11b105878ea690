"""The halt switch: while halted, no provider call starts anywhere (DESIGN.md §7)."""

from reliability.models import SystemControl


def is_halted() -> bool:
    return SystemControl.objects.filter(pk=1, halted=True).exists()
