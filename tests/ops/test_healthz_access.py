"""Item 12: /healthz tells anyone whether sending can proceed, and only staff or a token holder
what the workers, the queue and the providers look like. Flower in compose always has a login."""

import re
from pathlib import Path

import pytest
import yaml
from django.urls import reverse

from gpmas import workers
from tests.test_foundation_settings import run_django

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]
TOKEN, OTHER = "a" * 24 + "-first-health-token", "b" * 24 + "-second-health-token"
URL = reverse("healthz")


@pytest.fixture
def tokens(settings):
    settings.GPMAS_HEALTH_TOKENS = (TOKEN, OTHER)


@pytest.fixture
def worker_seen():
    workers.beat("worker@secret-host")


def test_anonymous_callers_get_the_status_and_code_only(client, providers, worker_seen):
    response = client.get(URL)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert b"secret-host" not in response.content


def test_anonymous_callers_still_see_an_outage_in_the_code(client, providers):
    response = client.get(URL)  # no worker seen
    assert (response.status_code, response.json()) == (503, {"status": "unavailable"})


def test_organizers_are_not_staff_and_get_the_status_only(organizer_client, providers, worker_seen):
    assert organizer_client.get(URL).json() == {"status": "ok"}


def test_staff_get_the_detail(admin_client, providers, worker_seen):
    body = admin_client.get(URL).json()
    assert body["workers"] == ["worker@secret-host"]
    assert {"queue", "providers", "checks", "reasons"} <= set(body)
    assert body["providers"][0]["quota"]


@pytest.mark.parametrize("token", [TOKEN, OTHER])
def test_each_configured_token_gets_the_detail(client, providers, worker_seen, tokens, token):
    body = client.get(URL, headers={"Authorization": f"Bearer {token}"}).json()
    assert body["workers"] == ["worker@secret-host"]


@pytest.mark.parametrize("header", [f"Bearer {TOKEN}x", "Bearer ", f"bearer {TOKEN[:-1]}"])
def test_a_wrong_token_is_401_without_detail(client, providers, worker_seen, tokens, header):
    response = client.get(URL, headers={"Authorization": header})
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"secret-host" not in response.content


def test_no_token_configured_means_no_token_works(client, providers, worker_seen, settings):
    settings.GPMAS_HEALTH_TOKENS = ()
    response = client.get(URL, headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 401


@pytest.mark.parametrize("value", ["short", f"{TOKEN}, tooshort"])
def test_a_short_token_stops_start_up(value):
    result = run_django({"DEBUG": "1", "GPMAS_HEALTH_TOKEN": value}, "check")
    assert result.returncode == 1
    assert "GPMAS_HEALTH_TOKEN tokens must be at least 24 characters" in result.stderr


def test_flower_in_compose_cannot_start_without_a_login():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    command = " ".join(compose["services"]["flower"]["command"])
    # ${VAR:?message} makes `docker compose` refuse to start when VAR is unset or empty.
    assert re.search(r"--basic-auth=\$\{FLOWER_BASIC_AUTH:\?[^}]+\}", command), command
    env_example = (ROOT / ".env.example").read_text()
    assert re.search(r"^FLOWER_BASIC_AUTH=\w+:\S+$", env_example, re.M)
