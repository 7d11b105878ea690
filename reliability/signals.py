from django.dispatch import Signal

# Sent after a resume commits. Receivers restart whatever waited (delivery runs its drain).
sending_resumed = Signal()
