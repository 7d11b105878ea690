"""Run the whole embedded stack in the foreground: ``./dev up``.

SQLite in ./data, an embedded redis-server (unless REDIS_URL is set), the sandbox providers, and
web, worker, beat and Flower under honcho (see Procfile). Ctrl-C, SIGTERM (``kill``, a process
supervisor) and SIGHUP (a closed terminal) all stop everything it started, in order; its pid is in
``data/devstack.pid`` meanwhile. Running it again is safe: migrations, demo users and sandbox
providers are all idempotent.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from sandbox import config
from sandbox.port_owner import command_line, port_owner
from sandbox.providers import sandbox_secrets
from sandbox.webhook_keys import WebhookKeys, site_environment

ROOT = Path(__file__).resolve().parent.parent
PORTS = {"GPMAS_WEB_PORT": 8000, "FLOWER_PORT": 5555}
# The sandbox's own ports, defaults in sandbox/config.py.
SANDBOX_PORTS = ("SANDBOX_HTTP_PORT", "SANDBOX_SMTP_PORT", "SANDBOX_SES_BACKEND_PORT")
EMBEDDED_REDIS_PORT = 6390
PID_FILE = "devstack.pid"  # in GPMAS_DATA_DIR
WEBHOOK_KEYS_DIR = "sandbox-webhook-keys"  # in GPMAS_DATA_DIR
DEV_WEBHOOK_SECRET = "sandbox:sandbox-webhook-secret"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stop(Exception):
    """A stop signal arrived (Ctrl-C, SIGTERM, SIGHUP): stop everything, as Ctrl-C always did."""


def _stop(signum, _frame) -> None:
    raise Stop(signal.Signals(signum).name)


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


def webhook_environment(env: dict[str, str], keys_dir: Path) -> dict[str, str]:
    """Both sides of the delivery events (docs/sandbox.md, "Delivery events"): the sandbox posts
    to the web process with the first of the site's basic-auth secrets, signing with the keys
    kept in ``keys_dir`` (made the first time); the site gets their public parts, the sandbox's
    SNS topic and (DEBUG only) the sandbox's SNS certificate URL. The keys' variables replace any
    set by hand: in the dev stack, the providers are the sandbox's."""
    secret = (env.get("GPMAS_WEBHOOK_SECRETS") or DEV_WEBHOOK_SECRET).split(",")[0].strip()
    keys = WebhookKeys.load_or_create(keys_dir)
    sandbox_url = config.load(env).http_url
    return {
        **site_environment(keys, secret=secret, sandbox_http_url=sandbox_url),
        "GPMAS_WEBHOOK_SECRETS": env.get("GPMAS_WEBHOOK_SECRETS") or secret,
        "SANDBOX_WEBHOOK_URL": env.get("SANDBOX_WEBHOOK_URL")
        or f"http://127.0.0.1:{env['GPMAS_WEB_PORT']}",
        "SANDBOX_WEBHOOK_SECRET": secret,
        "SANDBOX_WEBHOOK_KEYS_DIR": str(keys_dir),
    }


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def running_devstack(pid_file: Path) -> int | None:
    """The pid of a ``./dev up`` still running on the same data directory, if any."""
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    alive = pid != os.getpid() and Path(f"/proc/{pid}").exists()
    return pid if alive and "sandbox.devstack" in command_line(pid) else None


def busy_ports(env: dict[str, str], previous: int | None) -> str:
    """Empty when every port is free; else what holds each port and how to stop it."""
    names = [*PORTS, *SANDBOX_PORTS]
    if not env.get("REDIS_URL"):
        env.setdefault("GPMAS_EMBEDDED_REDIS_PORT", str(EMBEDDED_REDIS_PORT))
        names.append("GPMAS_EMBEDDED_REDIS_PORT")
    lines = []
    for name in names:
        if port_in_use(int(env[name])):
            owner = port_owner(int(env[name]))
            who = f"pid {owner.pid}: {owner.command}" if owner else "a process not visible here"
            lines.append(f"  port {env[name]} ({name}) is in use by {who}")
    if not lines and previous is None:
        return ""
    if previous is not None:
        hint = (
            f"A previous `./dev up` is still running (pid {previous}). Stop it with Ctrl-C in its"
            f" terminal or `kill {previous}`; it stops everything it started."
        )
    else:
        hint = (
            "If these are left over from a previous `./dev up`, stop them with `kill <pid>`;"
            " otherwise set the variable in parentheses to a free port."
        )
    return "\n".join(["dev up: cannot start, the stack looks already running:", *lines, hint])


def main() -> int:
    env = stack_environment()
    data_dir = Path(env["GPMAS_DATA_DIR"])
    problem = busy_ports(env, running_devstack(data_dir / PID_FILE))
    if problem:
        print(problem, file=sys.stderr)
        return 1
    data_dir.mkdir(parents=True, exist_ok=True)
    env.update(webhook_environment(env, data_dir / WEBHOOK_KEYS_DIR))
    for signum in STOP_SIGNALS:
        signal.signal(signum, _stop)
    pid_file = data_dir / PID_FILE
    pid_file.write_text(f"{os.getpid()}\n")
    try:
        return run_stack(env, data_dir)
    except Stop as stop:
        print(f"dev up: {stop} before the stack started; stopped.", flush=True)
        return 0
    finally:
        for signum in STOP_SIGNALS:  # a second signal must not cut the clean-up short
            signal.signal(signum, signal.SIG_IGN)
        if running_devstack(pid_file) is None:  # still ours (or gone): no other stack wrote it
            pid_file.unlink(missing_ok=True)


def run_stack(env: dict[str, str], data_dir: Path) -> int:
    redis = None
    if not env.get("REDIS_URL"):
        from gpmas.embedded_redis import EmbeddedRedis

        port = int(env["GPMAS_EMBEDDED_REDIS_PORT"])
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
    # Its own process group: a signal meant for the stack reaches this process alone, which
    # stops honcho (and so its children) the same way whichever signal it was.
    honcho = subprocess.Popen(
        [sys.executable, "-m", "honcho", "start", "-f", "Procfile"],
        env=env,
        cwd=ROOT,
        start_new_session=True,
    )
    threading.Thread(target=announce_when_ready, args=(env,), daemon=True).start()
    try:
        return honcho.wait()
    except Stop as stop:
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
        print(f"dev up: {stop}: stopping web, worker, beat, Flower, sandbox", flush=True)
        stop_group(honcho)
        return 0
    finally:
        stop_group(honcho)


def stop_group(leader: subprocess.Popen, timeout: float = 30.0) -> None:
    """SIGTERM to honcho, which stops its children in order; then to whatever of its process
    group is left; SIGKILL after ``timeout``."""
    if leader.poll() is None:
        leader.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            leader.wait(timeout=timeout)
    deadline = time.monotonic() + timeout
    sent = signal.SIGTERM
    while True:
        try:
            os.killpg(leader.pid, sent)
        except ProcessLookupError:
            return  # the group is empty
        if time.monotonic() > deadline:
            sent = signal.SIGKILL
        time.sleep(0.2)


def announce_when_ready(env: dict[str, str], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    ports = [int(env["GPMAS_WEB_PORT"]), int(env["FLOWER_PORT"]), int(env["SANDBOX_HTTP_PORT"])]
    while time.monotonic() < deadline and not all(port_in_use(p) for p in ports):
        time.sleep(0.5)
    web, flower, sandbox = ports
    from gpmas.demo_accounts import DEMO_ADMIN, DEMO_ORGANIZER

    organizer, admin = DEMO_ORGANIZER, DEMO_ADMIN
    print(
        "\n"
        f"  GPMAS is running (Ctrl-C or `kill {os.getpid()}` stops everything)\n"
        f"  site     http://127.0.0.1:{web}/          organizer: {organizer[0]} / {organizer[2]}\n"
        f"  admin    http://127.0.0.1:{web}/admin/    admin:     {admin[0]} / {admin[2]}\n"
        f"  health   http://127.0.0.1:{web}/healthz\n"
        f"  flower   http://127.0.0.1:{flower}/\n"
        f"  inbox    http://127.0.0.1:{sandbox}/      (the sandbox providers' captured mail)\n",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
