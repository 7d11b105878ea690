"""Provider adapters: build one for a Provider row, with its secrets from the environment.

Every kind in ``ProviderKind`` has exactly one adapter class here; each adapter declares the
secrets and the provider-row settings it needs, so the admin's checks and the adapter's own
construction cannot disagree about what a provider must have.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from django.conf import settings

from delivery.providers.base import (
    Adapter,
    ErrorClass,
    ProviderConfig,
    ProviderConfigError,
    SendError,
    read_secrets,
    secret_variable,
)

if TYPE_CHECKING:
    from delivery.models import Provider

__all__ = [
    "ADAPTERS",
    "Adapter",
    "ErrorClass",
    "ProviderConfig",
    "ProviderConfigError",
    "SendError",
    "adapter_class",
    "build_adapter",
    "provider_config_errors",
    "secret_variable",
]

# kind -> "module:Class", imported on first use (workers import them all before forking).
ADAPTERS = {
    "sendgrid": "delivery.providers.sendgrid:SendGridAdapter",
    "ses": "delivery.providers.ses:SesAdapter",
    "mailgun": "delivery.providers.mailgun:MailgunAdapter",
    "smtp": "delivery.providers.smtp:SmtpAdapter",
    "console": "delivery.providers.console:ConsoleAdapter",
}


def adapter_class(kind: str) -> type[Adapter]:
    if kind not in ADAPTERS:
        raise ProviderConfigError(f"unknown provider kind {kind!r}; known: {', '.join(ADAPTERS)}")
    module, _, name = ADAPTERS[kind].partition(":")
    return getattr(import_module(module), name)


def missing_settings(provider: Provider, cls: type[Adapter]) -> dict[str, str]:
    """The provider-row settings ``cls`` needs that ``provider`` leaves empty: field -> why."""
    return {
        field: error
        for field, error in cls.required_settings.items()
        if not getattr(provider, field)
    }


def provider_config(provider: Provider) -> ProviderConfig:
    cls = adapter_class(provider.kind)
    missing = missing_settings(provider, cls)
    if missing:
        raise ProviderConfigError(f"provider {provider.name!r}: {' '.join(missing.values())}")
    return ProviderConfig(
        name=provider.name,
        kind=provider.kind,
        api_base_url=provider.api_base_url,
        region=provider.region,
        domain=provider.domain,
        host=provider.host,
        port=provider.port,
        use_tls=provider.use_tls,
        connect_timeout=settings.GPMAS_PROVIDER_CONNECT_TIMEOUT,
        read_timeout=settings.GPMAS_PROVIDER_READ_TIMEOUT,
        secrets=read_secrets(provider.name, cls.required_secrets, cls.optional_secrets),
    )


def build_adapter(provider: Provider) -> Adapter:
    return adapter_class(provider.kind)(provider_config(provider))


def provider_config_errors(provider: Provider) -> dict[str, str]:
    """Form-style errors for a provider row that could not send; empty when it could."""
    try:
        cls = adapter_class(provider.kind)
    except ProviderConfigError as exc:
        return {"kind": str(exc)}
    errors = missing_settings(provider, cls)
    try:
        read_secrets(provider.name or "?", cls.required_secrets)
    except ProviderConfigError as exc:
        errors["__all__"] = str(exc)
    return errors
