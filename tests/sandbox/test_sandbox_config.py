"""The sandbox's SANDBOX_* variables, read in one place (sandbox/config.py), and the dev stack's
environment built from them."""

from __future__ import annotations

import pytest

from gpmas.env import ConfigError
from sandbox import config, devstack
from sandbox.providers import sandbox_secrets

SECRETS = sandbox_secrets(api_key="", smtp_username="", smtp_password="")


def test_defaults() -> None:
    loaded = config.load({})
    assert loaded == config.DEFAULTS
    assert (loaded.http_port, loaded.smtp_port, loaded.ses_backend_port) == (8025, 2525, 8026)
    assert (loaded.api_key, loaded.smtp_username, loaded.smtp_password) == (
        "sandbox-key",
        "sandbox",
        "sandbox-secret",
    )
    assert loaded.host == "127.0.0.1"
    assert loaded.verified_domains == ("example.com", "gpmas.local")
    assert loaded.http_url == "http://127.0.0.1:8025"


def test_every_value_comes_from_its_variable_and_goes_back_unchanged() -> None:
    environ = {
        "SANDBOX_HOST": "0.0.0.0",
        "SANDBOX_HTTP_PORT": " 9025 ",
        "SANDBOX_SMTP_PORT": "3525",
        "SANDBOX_SES_BACKEND_PORT": "9026",
        "SANDBOX_API_KEY": "k",
        "SANDBOX_SMTP_USERNAME": "u",
        "SANDBOX_SMTP_PASSWORD": "p",
        "SANDBOX_VERIFIED_DOMAINS": "a.test, b.test,",
        "SANDBOX_WEBHOOK_URL": "http://127.0.0.1:8001",
        "SANDBOX_WEBHOOK_SECRET": "hooks:s",
        "SANDBOX_WEBHOOK_KEYS_DIR": "/tmp/keys",
        "SANDBOX_EVENT_DELAY_MS": "250",
    }
    loaded = config.load(environ)
    assert loaded == config.SandboxConfig(
        host="0.0.0.0",
        http_port=9025,
        smtp_port=3525,
        ses_backend_port=9026,
        api_key="k",
        smtp_username="u",
        smtp_password="p",
        verified_domains=("a.test", "b.test"),
        webhook_url="http://127.0.0.1:8001",
        webhook_secret="hooks:s",
        webhook_keys_dir="/tmp/keys",
        event_delay_ms=250,
    )
    assert config.load(loaded.environment()) == loaded


def test_blank_port_is_the_default() -> None:
    assert config.load({"SANDBOX_SMTP_PORT": ""}).smtp_port == 2525


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("many", "must be an integer, got 'many'"),
        ("0", "must be at least 1, got 0"),
        ("70000", "must be at most 65535, got 70000"),
    ],
)
def test_a_bad_port_is_one_line_naming_the_variable(value: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config.load({"SANDBOX_HTTP_PORT": value})
    assert str(caught.value) == f"gpmas: configuration error: SANDBOX_HTTP_PORT {problem}"


def test_dev_stack_environment_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [*config.DEFAULTS.environment(), *SECRETS]:
        monkeypatch.delenv(name, raising=False)
    env = devstack.stack_environment()
    assert {name: env[name] for name in devstack.SANDBOX_PORTS} == {
        "SANDBOX_HTTP_PORT": "8025",
        "SANDBOX_SMTP_PORT": "2525",
        "SANDBOX_SES_BACKEND_PORT": "8026",
    }
    assert env["SANDBOX_API_KEY"] == "sandbox-key"
    assert env["GPMAS_PROVIDER_SANDBOX_SENDGRID_API_KEY"] == "sandbox-key"
    assert env["GPMAS_PROVIDER_SANDBOX_SMTP_PASSWORD"] == "sandbox-secret"


def test_dev_stack_environment_follows_the_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDBOX_HTTP_PORT", "9025")
    monkeypatch.setenv("SANDBOX_API_KEY", "local-key")
    for name in SECRETS:
        monkeypatch.delenv(name, raising=False)
    env = devstack.stack_environment()
    assert env["SANDBOX_HTTP_PORT"] == "9025"
    assert env["GPMAS_PROVIDER_SANDBOX_MAILGUN_API_KEY"] == "local-key"


def test_a_bad_event_delay_is_one_line_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="SANDBOX_EVENT_DELAY_MS must be at most 600000"):
        config.load({"SANDBOX_EVENT_DELAY_MS": "700000"})


def test_dev_stack_gives_both_sides_of_the_webhooks_the_same_keys(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    """The sandbox signs with the keys kept in the data directory; the site gets their public
    parts, the sandbox's topic and certificate URL, and the secret the sandbox posts with."""
    from sandbox.webhook_keys import SNS_CERT_PATH, SNS_TOPIC_ARN, WebhookKeys

    for name in ("GPMAS_WEBHOOK_SECRETS", "SANDBOX_WEBHOOK_URL", "GPMAS_WEB_PORT"):
        monkeypatch.delenv(name, raising=False)
    env = devstack.stack_environment()
    first = devstack.webhook_environment(env, tmp_path / "keys")
    again = devstack.webhook_environment(env, tmp_path / "keys")
    assert first == again  # made once, then kept
    keys = WebhookKeys.load_or_create(tmp_path / "keys")
    assert first["GPMAS_SENDGRID_WEBHOOK_VERIFICATION_KEY"] == keys.sendgrid_verification_key
    assert first["GPMAS_MAILGUN_WEBHOOK_SIGNING_KEY"] == keys.mailgun
    assert first["GPMAS_SES_SNS_TOPIC_ARNS"] == SNS_TOPIC_ARN
    assert first["GPMAS_SANDBOX_SNS_CERT_URL"] == "http://127.0.0.1:8025" + SNS_CERT_PATH
    assert first["SANDBOX_WEBHOOK_URL"] == "http://127.0.0.1:8000"
    assert first["SANDBOX_WEBHOOK_SECRET"] == first["GPMAS_WEBHOOK_SECRETS"]
    assert oct((tmp_path / "keys" / "sendgrid-ecdsa.pem").stat().st_mode & 0o777) == "0o600"

    monkeypatch.setenv("GPMAS_WEBHOOK_SECRETS", "mine:one,mine:two")
    own = devstack.webhook_environment(devstack.stack_environment(), tmp_path / "keys")
    assert (own["GPMAS_WEBHOOK_SECRETS"], own["SANDBOX_WEBHOOK_SECRET"]) == (
        "mine:one,mine:two",
        "mine:one",
    )
