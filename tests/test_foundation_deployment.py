"""docker compose cannot run here (no Docker engine), so check what can be checked offline."""

import importlib
import os
import shlex
import subprocess
import sys
from pathlib import Path

import yaml
from django.core.management import get_commands

ROOT = Path(__file__).resolve().parent.parent


def compose_services() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def assert_entry_point_exists(argv: list[str]) -> None:
    program = argv[0]
    if program == "gunicorn":
        module_name, attribute = argv[1].split(":")
        assert callable(getattr(importlib.import_module(module_name), attribute))
    elif program == "celery":
        assert argv[1] == "-A"
        app = importlib.import_module(argv[2]).celery_app
        assert argv[3] in {"worker", "beat", "flower"}
        assert app.main == "gpmas"
    elif program == "python":
        assert argv[1] == "manage.py"
        assert argv[2] in get_commands(), f"no management command {argv[2]!r}"
    else:
        raise AssertionError(f"unexpected program {program!r}")


def test_compose_file_has_the_production_services():
    services = compose_services()
    assert {"postgres", "redis", "web", "worker", "beat", "flower", "migrate"} <= set(services)


def test_every_app_service_command_names_a_real_entry_point():
    for name, service in compose_services().items():
        if "build" not in service:
            continue
        assert_entry_point_exists(service["command"]), name


def test_compose_redis_uses_aof_and_noeviction():
    command = " ".join(compose_services()["redis"]["command"])
    assert "--appendonly yes" in command
    assert "--maxmemory-policy noeviction" in command


def test_procfile_runs_web_worker_beat_flower_and_sandbox():
    processes = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, command = line.split(":", 1)
        processes[name] = shlex.split(command)
    assert set(processes) == {"web", "worker", "beat", "flower", "sandbox"}
    for argv in processes.values():
        assert_entry_point_exists([arg for arg in argv if not arg.startswith("--")][:4])


def test_the_production_image_installs_the_base_package_only():
    installs = [line for line in (ROOT / "Dockerfile").read_text().splitlines() if "pip " in line]
    assert installs == ["RUN pip install --no-cache-dir ."]


# A production install has neither moto nor aiosmtpd (the sandbox extra): hide them.
WITHOUT_SANDBOX_EXTRA = """
import sys
sys.modules["moto"] = sys.modules["aiosmtpd"] = None
import django
from django.conf import settings
from django.core.management import call_command, get_commands
django.setup()
import delivery.sending, delivery.tasks, gpmas.celery, gpmas.urls
assert "sandbox" not in settings.INSTALLED_APPS, settings.INSTALLED_APPS
assert "sandbox" not in get_commands()
call_command("check")
"""


def test_the_product_starts_without_the_sandbox_extra():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DEBUG"))}
    env.update(DEBUG="1", DJANGO_SETTINGS_MODULE="gpmas.settings")
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_SANDBOX_EXTRA],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout
