"""Provider adapters kept for the life of a worker process, so their connections (SMTP sessions,
HTTP keep-alive) serve one batch after another.

Each thread that makes provider calls (``delivery.inflight``) has adapters of its own: an adapter
holds one connection and is used by one call at a time, so a worker with four calls in flight
keeps four SMTP sessions open, not one shared by four.
"""

from __future__ import annotations

import threading

from delivery.models import Provider
from delivery.providers import Adapter, build_adapter

_local = threading.local()
_every: list[Adapter] = []  # every thread's, for closing them all at shutdown
_every_lock = threading.Lock()
_generation = 0  # +1 on every close_adapters: a thread's older adapters are closed already


def adapter_for(provider: Provider) -> Adapter:
    """This thread's adapter for the provider row as it is now (an edited row gets a new one)."""
    if getattr(_local, "generation", None) != _generation:
        _local.adapters, _local.generation = {}, _generation
    adapters: dict[tuple[int, float], Adapter] = _local.adapters
    key = (provider.pk, provider.updated_at.timestamp())
    if key not in adapters:
        for stale in [k for k in adapters if k[0] == provider.pk]:
            _forget(adapters.pop(stale))
        adapters[key] = build_adapter(provider)
        with _every_lock:
            _every.append(adapters[key])
    return adapters[key]


def _forget(adapter: Adapter) -> None:
    adapter.close()
    with _every_lock:
        _every.remove(adapter)


def close_adapters() -> None:
    """Close every thread's connections (a worker process shutting down, a test ending)."""
    global _generation
    with _every_lock:
        adapters, _every[:] = list(_every), []
        _generation += 1
    for adapter in adapters:
        adapter.close()
