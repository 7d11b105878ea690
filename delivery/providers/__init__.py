"""Provider adapters: build one for a Provider row, with its secrets from the environment."""

from __future__ import annotations

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


def adapter_class(kind: str) -> type[Adapter]:
    from delivery.providers.console import ConsoleAdapter
    from delivery.providers.mailgun import MailgunAdapter
    from delivery.providers.sendgrid import SendGridAdapter
    from delivery.providers.ses import SesAdapter
    from delivery.providers.smtp import SmtpAdapter

    classes = {
        "sendgrid": SendGridAdapter,
        "ses": SesAdapter,
        "mailgun": MailgunAdapter,
        "smtp": SmtpAdapter,
        "console": ConsoleAdapter,
    }
    if kind not in classes:
        raise ProviderConfigError(f"unknown provider kind {kind!r}; known: {', '.join(classes)}")
    return classes[kind]


def provider_config(provider: Provider) -> ProviderConfig:
    cls = adapter_class(provider.kind)
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
    errors = {}
    try:
        read_secrets(provider.name or "?", cls.required_secrets)
    except ProviderConfigError as exc:
        errors["__all__"] = str(exc)
    if provider.kind == "mailgun" and not provider.domain:
        errors["domain"] = "A Mailgun provider needs its sending domain."
    if provider.kind == "smtp" and not provider.host:
        errors["host"] = "An SMTP provider needs a host."
    return errors
