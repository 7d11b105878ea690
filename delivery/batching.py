"""Which jobs of a batch can share one provider call (providers with a batch API, such as
SendGrid's personalizations), and to which provider they go."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING

from delivery import provider_view
from delivery.calls import message_for
from delivery.connections import adapter_for
from delivery.message import OutgoingMessage
from delivery.models import EmailJob, Provider
from delivery.providers import Adapter, ProviderConfigError
from delivery.sendings import Sending

if TYPE_CHECKING:
    from delivery.batch_send import BatchSend


def batch_sendings(batch: BatchSend) -> list[Sending]:
    """The batch calls to make first: chunks of at least two untried jobs the provider ranked
    first for the batch can take in one call, when it has a batch API. The rest go one by one."""
    free = [job for job in batch.untried if job.pinned_provider is None]
    provider = batch_provider(batch) if len(free) >= 2 else None
    if provider is None:
        return []
    return [
        Sending(jobs, batch=True, candidates=[provider], messages=messages)
        for jobs, messages in chunks(adapter_for(provider), free)
    ]


def batch_provider(batch: BatchSend) -> Provider | None:
    """The provider ranked first now, if its circuit is closed (a recovering provider's probe is
    one message) and it can take several messages in one call."""
    selection, _ = batch.select(pinned=None)
    if not selection.providers:
        return None
    first = selection.providers[0]
    if selection.views[first.pk].circuit != provider_view.CLOSED:
        return None
    try:
        return first if adapter_for(first).max_batch >= 2 else None
    except ProviderConfigError:
        return None


Chunk = tuple[list[EmailJob], list[OutgoingMessage]]


def chunks(adapter: Adapter, jobs: Sequence[EmailJob]) -> list[Chunk]:
    """Jobs (and their messages) grouped by the adapter's ``batch_key``, at most ``max_batch``
    to a chunk; chunks of one are left out."""
    groups: dict[object, list[tuple[EmailJob, OutgoingMessage]]] = defaultdict(list)
    for job in jobs:
        message = message_for(job)
        key = adapter.batch_key(message)
        if key is not None:
            groups[key].append((job, message))
    size = adapter.max_batch
    every = [group[i : i + size] for group in groups.values() for i in range(0, len(group), size)]
    return [([j for j, _ in chunk], [m for _, m in chunk]) for chunk in every if len(chunk) >= 2]
