"""The sandbox's ports and credentials: the ``SANDBOX_*`` environment variables and their defaults.

The one place they are defined. ``manage.py sandbox``, the dev stack (``./dev up``), the test
fixtures and the benchmarks read them here; GPMAS's settings know nothing of them. Cheap to
import (no Django, no moto).

    SANDBOX_HOST               127.0.0.1                address the emulators listen on
    SANDBOX_HTTP_PORT          8025                     SendGrid, Mailgun, SES, the inbox and API
    SANDBOX_SMTP_PORT          2525                     the SMTP sink
    SANDBOX_SES_BACKEND_PORT   8026                     moto, behind the SES emulator
    SANDBOX_API_KEY            sandbox-key              SendGrid and Mailgun key
    SANDBOX_SMTP_USERNAME      sandbox                  SMTP AUTH user
    SANDBOX_SMTP_PASSWORD      sandbox-secret           SMTP AUTH password
    SANDBOX_VERIFIED_DOMAINS   example.com,gpmas.local  sender domains Mailgun and SES accept
    SANDBOX_WEBHOOK_URL        (empty: no events)       the site the delivery events go to
    SANDBOX_WEBHOOK_SECRET     (empty)                  basic auth "user:password" for them
    SANDBOX_WEBHOOK_KEYS_DIR   (empty: new keys)        where the signing keys are kept
    SANDBOX_EVENT_DELAY_MS     1000                     accepted -> delivered (and between events)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from gpmas.env import ConfigError


@dataclass(frozen=True)
class SandboxConfig:
    host: str = "127.0.0.1"
    http_port: int = 8025
    smtp_port: int = 2525
    ses_backend_port: int = 8026
    api_key: str = "sandbox-key"
    smtp_username: str = "sandbox"
    smtp_password: str = "sandbox-secret"
    verified_domains: tuple[str, ...] = ("example.com", "gpmas.local")
    webhook_url: str = ""
    webhook_secret: str = ""
    webhook_keys_dir: str = ""
    event_delay_ms: int = 1000

    @property
    def http_url(self) -> str:
        """Where processes on this machine reach the HTTP emulators, the inbox and the API."""
        return f"http://127.0.0.1:{self.http_port}"

    def environment(self) -> dict[str, str]:
        """These values as ``SANDBOX_*`` variables, for processes started with them."""
        return {
            "SANDBOX_HOST": self.host,
            "SANDBOX_HTTP_PORT": str(self.http_port),
            "SANDBOX_SMTP_PORT": str(self.smtp_port),
            "SANDBOX_SES_BACKEND_PORT": str(self.ses_backend_port),
            "SANDBOX_API_KEY": self.api_key,
            "SANDBOX_SMTP_USERNAME": self.smtp_username,
            "SANDBOX_SMTP_PASSWORD": self.smtp_password,
            "SANDBOX_VERIFIED_DOMAINS": ",".join(self.verified_domains),
            "SANDBOX_WEBHOOK_URL": self.webhook_url,
            "SANDBOX_WEBHOOK_SECRET": self.webhook_secret,
            "SANDBOX_WEBHOOK_KEYS_DIR": self.webhook_keys_dir,
            "SANDBOX_EVENT_DELAY_MS": str(self.event_delay_ms),
        }


DEFAULTS = SandboxConfig()


def load(environ: Mapping[str, str] | None = None) -> SandboxConfig:
    """The configuration from ``environ`` (default: this process's environment).

    A bad port stops with one line naming the variable (``ConfigError``, as for GPMAS's own).
    """
    env = os.environ if environ is None else environ
    return SandboxConfig(
        host=env.get("SANDBOX_HOST") or DEFAULTS.host,
        http_port=_port(env, "SANDBOX_HTTP_PORT", DEFAULTS.http_port),
        smtp_port=_port(env, "SANDBOX_SMTP_PORT", DEFAULTS.smtp_port),
        ses_backend_port=_port(env, "SANDBOX_SES_BACKEND_PORT", DEFAULTS.ses_backend_port),
        api_key=env.get("SANDBOX_API_KEY", DEFAULTS.api_key),
        smtp_username=env.get("SANDBOX_SMTP_USERNAME", DEFAULTS.smtp_username),
        smtp_password=env.get("SANDBOX_SMTP_PASSWORD", DEFAULTS.smtp_password),
        verified_domains=_domains(env.get("SANDBOX_VERIFIED_DOMAINS")),
        webhook_url=env.get("SANDBOX_WEBHOOK_URL", "").strip(),
        webhook_secret=env.get("SANDBOX_WEBHOOK_SECRET", ""),
        webhook_keys_dir=env.get("SANDBOX_WEBHOOK_KEYS_DIR", "").strip(),
        event_delay_ms=_number(env, "SANDBOX_EVENT_DELAY_MS", DEFAULTS.event_delay_ms, 0, 600_000),
    )


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    return _number(env, name, default, 1, 65535)


def _number(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(name, f"must be an integer, got {raw!r}") from None
    if value < low:
        raise ConfigError(name, f"must be at least {low}, got {value}")
    if value > high:
        raise ConfigError(name, f"must be at most {high}, got {value}")
    return value


def _domains(raw: str | None) -> tuple[str, ...]:
    if raw is None:
        return DEFAULTS.verified_domains
    return tuple(item.strip() for item in raw.split(",") if item.strip())
