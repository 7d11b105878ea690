"""The rows a measurement writes, and their removal afterwards: organizers, their events (with
the invitations) and the email jobs. Shared by the bulk-invite, contention and ranking
benchmarks."""

from __future__ import annotations

import uuid


def new_organizer(label: str):
    from django.contrib.auth import get_user_model

    from events.models import OrganizerProfile

    name = f"bench-{label}-{uuid.uuid4().hex[:6]}"
    user = get_user_model().objects.create_user(name, f"{name}@example.com", uuid.uuid4().hex)
    # Invitations go out under the organizer's display name (events/profile.py).
    OrganizerProfile.objects.create(user=user, display_name=f"Bench {label.title()}")
    return user


def new_event(organizer, *, guests=(), **overrides):
    """An event ten days ahead, created through the service (with ``guests`` invited)."""
    from events.services import event_create
    from tests.events.factories import event_fields

    fields = event_fields(title="The benchmark dinner", **overrides)
    event, _ = event_create(organizer=organizer, fields=fields, guests=guests)
    return event


def delete_since(organizer, first_job_id: int) -> None:
    """Remove what a measurement wrote: the organizer (and with it events and invitations) and
    every email job from ``first_job_id`` on, so no queued job is left for a later drain."""
    from delivery.models import EmailJob

    organizer.delete()
    EmailJob.objects.filter(pk__gte=first_job_id).delete()


def next_job_id() -> int:
    from delivery.models import EmailJob

    last = EmailJob.objects.order_by("-pk").values_list("pk", flat=True).first()
    return (last or 0) + 1
