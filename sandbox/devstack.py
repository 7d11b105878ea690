"""Run the whole embedded stack in the foreground: ``./dev up``.

SQLite in ./data, an embedded redis-server (unless REDIS_URL is set), the sandbox providers, and
web, worker, beat and Flower under honcho (see Procfile). Ctrl-C stops everything it started.
Running it again is safe: migrations, demo users and sandbox providers are all idempotent.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from sandbox import config
from sandbox.providers import sandbox_secrets

ROOT = Path(__file__).resolve().parent.parent
PORTS = {"GPMAS_WEB_PORT": 8000, "FLOWER_PORT": 5555}
# The sandbox's own ports, defaults in sandbox/config.py.
SANDBOX_PORTS = ("SANDBOX_HTTP_PORT", "SANDBOX_SMTP_PORT", "SANDBOX_SES_BACKEND_PORT")
EMBEDDED_REDIS_PORT = 6390


def stack_environment() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("DEBUG", "1")
    env.setdefault("GPMAS_DATA_DIR", str(ROOT / "data"))
    for name, port in PORTS.items():
        env.setdefault(name, str(port))
    sandbox = config.load(env)
    env.update(sandbox.environment())  # what `manage.py sandbox` and the rest will read
    secrets = sandbox_secrets(
        api_key=sandbox.api_key,
        smtp_username=sandbox.smtp_username,
        smtp_password=sandbox.smtp_password,
    )
    for name, value in secrets.items():
        env.setdefault(name, value)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def main() -> int:
    env = stack_environment()
    names = [*PORTS, *SANDBOX_PORTS]
    busy = [f"{name}={env[name]}" for name in names if port_in_use(int(env[name]))]
    if busy:
        print(f"dev up: port already in use ({', '.join(busy)}); is the stack running already?")
        return 1
    data_dir = Path(env["GPMAS_DATA_DIR"])
    data_dir.mkdir(parents=True, exist_ok=True)

    redis = None
    if not env.get("REDIS_URL"):
        from gpmas.embedded_redis import EmbeddedRedis

        port = int(env.get("GPMAS_EMBEDDED_REDIS_PORT", EMBEDDED_REDIS_PORT))
        redis = EmbeddedRedis(data_dir / "redis", port).start()
        env["REDIS_URL"] = redis.url
        print(f"dev up: embedded Redis on {redis.url} (AOF in {redis.data_dir})", flush=True)
    try:
        manage = [sys.executable, "manage.py"]
        for step in (["migrate", "--noinput"], ["create_demo_users"], ["sandbox", "setup"]):
            subprocess.run([*manage, *step], env=env, cwd=ROOT, check=True)
        return run_processes(env)
    except subprocess.CalledProcessError as exc:
        print(f"dev up: {' '.join(exc.cmd[1:])} failed with exit status {exc.returncode}")
        return 1
    finally:
        if redis is not None:
            redis.stop()


def run_processes(env: dict[str, str]) -> int:
    honcho = subprocess.Popen(
        [sys.executable, "-m", "honcho", "start", "-f", "Procfile"], env=env, cwd=ROOT
    )
    threading.Thread(target=announce_when_ready, args=(env,), daemon=True).start()
    try:
        return honcho.wait()
    except KeyboardInterrupt:
        # The terminal sent SIGINT to honcho too; give it time to stop its children in order.
        try:
            return honcho.wait(timeout=30)
        except subprocess.TimeoutExpired:
            honcho.send_signal(signal.SIGKILL)
            return 1


def announce_when_ready(env: dict[str, str], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    ports = [int(env["GPMAS_WEB_PORT"]), int(env["FLOWER_PORT"]), int(env["SANDBOX_HTTP_PORT"])]
    while time.monotonic() < deadline and not all(port_in_use(p) for p in ports):
        time.sleep(0.5)
    web, flower, sandbox = ports
    from gpmas.management.commands.create_demo_users import DEMO_ADMIN, DEMO_ORGANIZER

    organizer, admin = DEMO_ORGANIZER, DEMO_ADMIN
    print(
        "\n"
        "  GPMAS is running (Ctrl-C stops everything)\n"
        f"  site     http://127.0.0.1:{web}/          organizer: {organizer[0]} / {organizer[2]}\n"
        f"  admin    http://127.0.0.1:{web}/admin/    admin:     {admin[0]} / {admin[2]}\n"
        f"  health   http://127.0.0.1:{web}/healthz\n"
        f"  flower   http://127.0.0.1:{flower}/\n"
        f"  inbox    http://127.0.0.1:{sandbox}/      (the sandbox providers' captured mail)\n",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
