"""Provider rows and secrets that point GPMAS at a running sandbox (dev stack and tests).

Kept apart from the emulators: this is the one module here that knows GPMAS's Provider model.
"""

from __future__ import annotations

SANDBOX_PROVIDERS = {
    # name: (kind, weight)
    "sandbox-sendgrid": ("sendgrid", 3),
    "sandbox-ses": ("ses", 2),
    "sandbox-mailgun": ("mailgun", 2),
    "sandbox-smtp": ("smtp", 1),
}
MAILGUN_DOMAIN = "gpmas.local"


def sandbox_secrets(*, api_key: str, smtp_username: str, smtp_password: str) -> dict[str, str]:
    """Environment variables holding the sandbox providers' secrets (the emulators' own keys)."""
    from delivery.providers.base import secret_variable

    values = {
        ("sandbox-sendgrid", "API_KEY"): api_key,
        ("sandbox-mailgun", "API_KEY"): api_key,
        ("sandbox-ses", "ACCESS_KEY_ID"): "sandbox-access-key",
        ("sandbox-ses", "SECRET_ACCESS_KEY"): "sandbox-secret-key",
        ("sandbox-smtp", "USERNAME"): smtp_username,
        ("sandbox-smtp", "PASSWORD"): smtp_password,
    }
    return {secret_variable(name, secret): value for (name, secret), value in values.items()}


def configure_sandbox_providers(*, http_url: str, smtp_host: str, smtp_port: int) -> list:
    """Create or update one Provider row per sandbox emulator. Idempotent."""
    from delivery.models import Provider

    connection = {
        "sendgrid": {"api_base_url": http_url},
        "ses": {"api_base_url": http_url, "region": "us-east-1"},
        "mailgun": {"api_base_url": http_url, "domain": MAILGUN_DOMAIN},
        "smtp": {"host": smtp_host, "port": smtp_port},
    }
    providers = []
    for name, (kind, weight) in SANDBOX_PROVIDERS.items():
        # Only the connection is refreshed on a re-run: weights and switches set in the admin stay.
        provider, _ = Provider.objects.update_or_create(
            name=name,
            defaults=connection[kind],
            create_defaults={"kind": kind, "weight": weight, "enabled": True, **connection[kind]},
        )
        providers.append(provider)
    return providers
