"""Which jobs can share one provider call (providers with a batch API, such as SendGrid's
personalizations)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence

from delivery.message import OutgoingMessage
from delivery.models import EmailJob
from delivery.providers import Adapter

Chunk = list[tuple[EmailJob, OutgoingMessage]]


def chunks_for_batch_calls(
    adapter: Adapter, jobs: Sequence[EmailJob], message_for: Callable[[EmailJob], OutgoingMessage]
) -> Iterator[Chunk]:
    """Chunks of at least two jobs whose messages the adapter can send in one call: grouped by
    its ``batch_key``, at most ``max_batch`` per chunk. Jobs left out go one by one."""
    if adapter.max_batch < 2:
        return
    groups: dict[object, Chunk] = defaultdict(list)
    for job in jobs:
        message = message_for(job)
        key = adapter.batch_key(message)
        if key is not None:
            groups[key].append((job, message))
    for group in groups.values():
        for start in range(0, len(group), adapter.max_batch):
            chunk = group[start : start + adapter.max_batch]
            if len(chunk) >= 2:
                yield chunk
