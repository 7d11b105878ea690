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
    )


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(name, f"must be an integer, got {raw!r}") from None
    if value < 1:
        raise ConfigError(name, f"must be at least 1, got {value}")
    if value > 65535:
        raise ConfigError(name, f"must be at most 65535, got {value}")
    return value


def _domains(raw: str | None) -> tuple[str, ...]:
    if raw is None:
        return DEFAULTS.verified_domains
    return tuple(item.strip() for item in raw.split(",") if item.strip())
