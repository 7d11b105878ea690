"""Provider adapters kept for the life of a worker process, so their connections (SMTP sessions,
HTTP keep-alive) serve one batch after another."""

from __future__ import annotations

from delivery.models import Provider
from delivery.providers import Adapter, build_adapter

# Keyed by the provider row's version: an edited provider gets a new adapter, the old one closes.
_adapters: dict[tuple[int, float], Adapter] = {}


def adapter_for(provider: Provider) -> Adapter:
    key = (provider.pk, provider.updated_at.timestamp())
    if key not in _adapters:
        for stale in [k for k in _adapters if k[0] == provider.pk]:
            _adapters.pop(stale).close()
        _adapters[key] = build_adapter(provider)
    return _adapters[key]


def close_adapters() -> None:
    """Close every connection (a worker process shutting down)."""
    for adapter in _adapters.values():
        adapter.close()
    _adapters.clear()
