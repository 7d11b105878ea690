import os
import subprocess
import sys
from pathlib import Path

import pytest

from gpmas.env import ConfigError, env_bool, env_database, env_int, env_list, env_redis_url

ROOT = Path(__file__).resolve().parent.parent


def test_env_int_reads_integers_and_defaults(monkeypatch):
    monkeypatch.setenv("GPMAS_X", " 42 ")
    assert env_int("GPMAS_X", 7) == 42
    monkeypatch.delenv("GPMAS_X")
    assert env_int("GPMAS_X", 7) == 7


@pytest.mark.parametrize("raw", ["forty", "4.5", "1e3"])
def test_env_int_rejects_non_integers_naming_the_variable(monkeypatch, raw):
    monkeypatch.setenv("GPMAS_X", raw)
    with pytest.raises(ConfigError, match=r"GPMAS_X must be an integer"):
        env_int("GPMAS_X", 7)


def test_env_int_enforces_minimum(monkeypatch):
    monkeypatch.setenv("GPMAS_X", "0")
    with pytest.raises(ConfigError, match="GPMAS_X must be at least 1"):
        env_int("GPMAS_X", 7, minimum=1)


@pytest.mark.parametrize(("raw", "expected"), [("1", True), ("yes", True), ("off", False)])
def test_env_bool_accepts_common_spellings(monkeypatch, raw, expected):
    monkeypatch.setenv("GPMAS_FLAG", raw)
    assert env_bool("GPMAS_FLAG", not expected) is expected


def test_env_bool_rejects_anything_else(monkeypatch):
    monkeypatch.setenv("GPMAS_FLAG", "maybe")
    with pytest.raises(ConfigError, match="GPMAS_FLAG must be a boolean"):
        env_bool("GPMAS_FLAG", False)


def test_env_list_splits_on_commas(monkeypatch):
    monkeypatch.setenv("HOSTS", "a.example, b.example,,")
    assert env_list("HOSTS", []) == ["a.example", "b.example"]


def test_env_database_parses_postgres_and_sqlite(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://u:p@db.example:5433/gpmas")
    pg = env_database("DATABASE_URL", "sqlite:///x.sqlite3")
    assert (pg["ENGINE"], pg["HOST"], pg["PORT"], pg["NAME"]) == (
        "django.db.backends.postgresql",
        "db.example",
        5433,
        "gpmas",
    )
    monkeypatch.delenv("DATABASE_URL")
    assert env_database("DATABASE_URL", "sqlite:////tmp/x.sqlite3")["NAME"] == "/tmp/x.sqlite3"


@pytest.mark.parametrize("raw", ["nonsense", "mysqlx://host/db", "postgres://host:notaport/db"])
def test_env_database_rejects_unusable_urls(monkeypatch, raw):
    monkeypatch.setenv("DATABASE_URL", raw)
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        env_database("DATABASE_URL", "sqlite:///x.sqlite3")


@pytest.mark.parametrize("raw", ["http://localhost:6379", "redis://localhost:99999/0", "redis://"])
def test_env_redis_url_rejects_bad_urls(monkeypatch, raw):
    monkeypatch.setenv("REDIS_URL", raw)
    with pytest.raises(ConfigError, match="REDIS_URL"):
        env_redis_url("REDIS_URL", "redis://127.0.0.1:6379/0")


def run_django(env_overrides: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "SECURE_", "DATABASE_URL", "DEBUG", "SECRET_KEY"))
    }
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DATABASE_URL", "not a url"),
        ("GPMAS_MAX_ATTEMPTS", "many"),
        ("DEBUG", "perhaps"),
        ("REDIS_URL", "http://127.0.0.1:6379"),
    ],
)
def test_a_bad_value_stops_startup_with_one_line_naming_the_variable(variable, value):
    result = run_django({"DEBUG": "1", variable: value}, "check")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"gpmas: configuration error: {variable} ")


def test_production_refuses_to_start_without_a_secret_key():
    result = run_django({"DEBUG": "0"}, "check")
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == "gpmas: configuration error: SECRET_KEY must be set when DEBUG is off"
    )


def test_production_settings_pass_check_deploy_without_warnings():
    result = run_django(
        {
            "DEBUG": "0",
            "SECRET_KEY": "a-real-production-secret-0123456789-abcdefghijklmnopqrstuvwxyz",
            "ALLOWED_HOSTS": "gpmas.example.com",
        },
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
