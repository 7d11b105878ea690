"""Typed readers for environment variables.

A bad value stops start-up with one line naming the variable (``ConfigError`` is a ``SystemExit``,
so Python prints its message without a traceback, whichever entry point loaded the settings).
"""

import os
from urllib.parse import urlsplit

import dj_database_url

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class ConfigError(SystemExit):
    def __init__(self, name: str, problem: str) -> None:
        self.name = name
        super().__init__(f"gpmas: configuration error: {name} {problem}")


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(name, f"must be a boolean (1/0, true/false, yes/no, on/off), got {raw!r}")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(name, f"must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ConfigError(name, f"must be at least {minimum}, got {value}")
    return value


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise ConfigError(name, f"must be a number, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ConfigError(name, f"must be at least {minimum}, got {value}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_database(name: str, default: str) -> dict:
    raw = os.environ.get(name) or default
    try:
        config = dj_database_url.parse(
            raw,
            conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0),
            conn_health_checks=True,
        )
    except Exception as exc:  # dj-database-url raises several types for an unparseable URL
        raise ConfigError(name, f"is not a usable database URL ({exc})") from None
    if not config.get("NAME"):
        raise ConfigError(name, f"names no database: {raw!r}")
    return config


def env_redis_url(name: str, default: str) -> str:
    raw = os.environ.get(name) or default
    parts = urlsplit(raw)
    if parts.scheme not in {"redis", "rediss", "unix"}:
        raise ConfigError(name, f"must be a redis://, rediss:// or unix:// URL, got {raw!r}")
    if parts.scheme != "unix":
        try:
            parts.port  # noqa: B018 - urlsplit validates the port lazily
        except ValueError:
            raise ConfigError(name, f"has an invalid port: {raw!r}") from None
        if not parts.hostname:
            raise ConfigError(name, f"names no host: {raw!r}")
    return raw
