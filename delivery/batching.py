"""Which jobs of a batch can share one provider call (providers with a batch API: SendGrid's
personalizations, Mailgun's recipient-variables), and to which provider they go."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING

from delivery import provider_view, ranking
from delivery.calls import message_for
from delivery.connections import adapter_for
from delivery.message import OutgoingMessage
from delivery.models import EmailJob, Provider
from delivery.providers import Adapter, ProviderConfigError
from delivery.sendings import Sending

if TYPE_CHECKING:
    from delivery.batch_send import BatchSend


def batch_sendings(batch: BatchSend) -> tuple[list[Sending], dict[int, int]]:
    """Split a batch's free jobs between the providers as one-by-one sends would: each job draws
    its provider from the ranking. Jobs that drew a provider with a batch API (circuit closed,
    not slow) share calls to it; the rest go one by one, their draw tried first. So a provider's
    share of messages follows the weights whether or not it can take them in one call (giving a
    whole batch to the provider ranked first gave a batch provider three quarters of the
    messages at equal weights). Returns the batch calls and each job's draw (job id ->
    provider id)."""
    free = [job for job in batch.untried if job.pinned_provider is None]
    if len(free) < 2:
        return [], {}
    draws: dict[int, int] = {}
    drawn_by: dict[int, tuple[Provider, list[EmailJob]]] = {}
    for job in free:
        selection, _ = batch.select(pinned=None, avoided=batch.avoided.get(job.pk, frozenset()))
        if not selection.providers:
            return [], {}
        first = selection.providers[0]
        draws[job.pk] = first.pk
        if _takes_batches(first, selection):
            drawn_by.setdefault(first.pk, (first, []))[1].append(job)
    sendings = [
        Sending(jobs, batch=True, candidates=[provider], messages=messages)
        for provider, jobs in drawn_by.values()
        for jobs, messages in chunks(adapter_for(provider), jobs, rate=provider.max_per_second)
    ]
    return sendings, draws


def _takes_batches(provider: Provider, selection: ranking.Selection) -> bool:
    """The provider can take several messages in one call now: its circuit is closed (a
    recovering provider's probe is one message), it is not slow (one call at a time), and its
    adapter has a batch API."""
    view = selection.views[provider.pk]
    if view.circuit != provider_view.CLOSED or provider.pk in selection.slow:
        return False
    try:
        return adapter_for(provider).max_batch >= 2
    except ProviderConfigError:
        return False


Chunk = tuple[list[EmailJob], list[OutgoingMessage]]


def chunks(adapter: Adapter, jobs: Sequence[EmailJob], *, rate: int | None = None) -> list[Chunk]:
    """Jobs (and their messages) grouped by the adapter's ``batch_key``, at most ``max_batch``
    to a chunk, and no more than the provider's recipients per second (``rate``: a larger call
    could never reserve them), and no address twice in a chunk when the adapter asks for
    distinct recipients; chunks of one are left out."""
    groups: dict[object, list[tuple[EmailJob, OutgoingMessage]]] = defaultdict(list)
    for job in jobs:
        message = message_for(job)
        key = adapter.batch_key(message)
        if key is not None:
            groups[key].append((job, message))
    size = min(adapter.max_batch, rate or adapter.max_batch)
    every = [chunk for group in groups.values() for chunk in _split(adapter, group, size)]
    return [([j for j, _ in chunk], [m for _, m in chunk]) for chunk in every if len(chunk) >= 2]


def _split(adapter: Adapter, group: list[tuple[EmailJob, OutgoingMessage]], size: int):
    if not adapter.distinct_recipients:
        return [group[i : i + size] for i in range(0, len(group), size)]
    split: list[list[tuple[EmailJob, OutgoingMessage]]] = []
    addresses: list[set[str]] = []
    for item in group:
        address = item[1].to_email.lower()
        for chunk, taken in zip(split, addresses, strict=True):
            if len(chunk) < size and address not in taken:
                chunk.append(item)
                taken.add(address)
                break
        else:
            split.append([item])
            addresses.append({address})
    return split
