"""Environment readers for the operators' settings: their time zone and the /healthz tokens."""

import os
import zoneinfo

from gpmas.env import ConfigError

MIN_TOKEN_LENGTH = 24


def env_time_zone(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip() or default
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            name, f"must be an IANA time zone such as Europe/Paris, got {value!r}"
        ) from None
    return value


def env_tokens(name: str) -> tuple[str, ...]:
    """A comma-separated list of secret tokens (several, to rotate one without downtime)."""
    tokens = tuple(t.strip() for t in os.environ.get(name, "").split(",") if t.strip())
    if any(len(token) < MIN_TOKEN_LENGTH for token in tokens):
        raise ConfigError(name, f"tokens must be at least {MIN_TOKEN_LENGTH} characters each")
    return tokens
