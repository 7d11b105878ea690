"""/healthz: 200 when sending can proceed, 503 with the reason otherwise."""

import pytest
from django.urls import reverse

from delivery import provider_state
from delivery.models import Provider
from gpmas import workers
from reliability import halt
from tests.processes import CeleryWorker, WebServer, wait_for
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.django_db
TOKEN = "health-token-for-the-tests-0123456789"  # the detail is for staff or token holders
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def worker_seen():
    workers.beat("worker@test")


def test_healthy_system_answers_200_with_the_details(admin_client, providers, worker_seen):
    response = admin_client.get(reverse("healthz"))
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"] == {"database": "ok", "redis": "ok", "broker": "ok"}
    assert body["workers"] == ["worker@test"]
    assert body["halted"] is False
    assert body["queue"]["queued"] == 0
    assert {p["name"]: p["state"] for p in body["providers"]}["sandbox-ses"] == "closed"
    assert body["system"]["state"] == "normal"


def test_halted_is_503_with_the_reason(admin_client, providers, worker_seen):
    halt.system_halt(reason="incident 42", source="test")
    response = admin_client.get(reverse("healthz"))
    assert response.status_code == 503
    assert response.json()["reasons"] == ["All sending is halted: incident 42. Emails wait."]


def test_every_provider_unavailable_is_503(admin_client, providers, worker_seen):
    for provider in Provider.objects.all():
        provider_state.record_outcome(provider, "provider_error", at=provider_state.now())
    response = admin_client.get(reverse("healthz"))
    assert response.status_code == 503
    [reason] = response.json()["reasons"]
    assert reason.startswith("No provider can send right now (")
    assert "sandbox-mailgun open until" in reason and "sandbox-smtp open until" in reason
    provider_state.reset(Provider.objects.get(kind="smtp"))
    body = admin_client.get(reverse("healthz")).json()
    assert body["status"] == "ok"
    assert body["system"]["state"] == "degraded"  # still sending, through smtp alone


def test_no_worker_is_503(admin_client, providers):
    response = admin_client.get(reverse("healthz"))
    assert response.status_code == 503
    assert response.json()["reasons"] == ["no worker seen in the last 30s"]


def test_healthz_is_get_only(admin_client):
    assert admin_client.post(reverse("healthz")).status_code == 405


def test_system_state_appears_in_the_status_command(providers, capsys):
    from django.core.management import call_command

    halt.system_halt(reason="maintenance", source="test")
    call_command("gpmas", "status")
    assert "system: halted - All sending is halted: maintenance." in capsys.readouterr().out


@pytest.mark.django_db(transaction=True)
def test_healthz_follows_redis_down_and_back(tmp_path, providers):
    """A web process and a worker on a redis-server of the test's own, killed and restarted."""
    from gpmas.embedded_redis import EmbeddedRedis

    own = EmbeddedRedis(tmp_path / "redis", appendonly=False).start()
    env = {"REDIS_URL": own.url, "GPMAS_HEALTH_TOKEN": TOKEN}
    web = WebServer(tmp_path, **env).start()
    worker = CeleryWorker("health", tmp_path, **env).start()
    try:
        import requests

        def status() -> int:
            return requests.get(f"{web.url}/healthz", headers=BEARER, timeout=10).status_code

        wait_for(lambda: status() == 200, timeout=30, message="healthy")
        own.kill()
        response = requests.get(f"{web.url}/healthz", headers=BEARER, timeout=10)
        assert response.status_code == 503
        assert "redis unavailable: ConnectionError" in response.json()["reasons"]
        own.start()  # same port, empty: the worker's next heartbeat brings it back
        wait_for(lambda: status() == 200, timeout=40, interval=0.5, message="healthy again")
    finally:
        worker.kill()
        web.stop()
        own.stop()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_healthz_follows_the_database_down_and_back(tmp_path, providers):
    """The web process reaches PostgreSQL through a proxy the test cuts and restores."""
    import requests
    from django.db import connection

    from tests.processes import test_database_url

    db = connection.settings_dict
    proxy = TcpProxy(db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432))
    url = test_database_url().replace(f":{db['PORT'] or 5432}/", f":{proxy.port}/")
    web = WebServer(tmp_path, DATABASE_URL=url, GPMAS_HEALTH_TOKEN=TOKEN).start()
    workers.beat("worker@test")
    try:

        def health() -> requests.Response:
            return requests.get(f"{web.url}/healthz", headers=BEARER, timeout=10)

        wait_for(lambda: health().status_code == 200, timeout=30, message="healthy")
        proxy.cut()
        response = health()
        assert response.status_code == 503
        assert response.json()["reasons"][0].startswith("database unavailable")
        proxy.restore()
        wait_for(lambda: health().status_code == 200, timeout=30, message="healthy again")
    finally:
        web.stop()
        proxy.close()
