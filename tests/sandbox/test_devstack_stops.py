"""Item 13: ``./dev up`` stops everything it started however it is stopped (Ctrl-C, SIGTERM,
SIGHUP), and a port already taken is explained: by which process, and how to stop it.

A real process tree: the devstack runs as a subprocess on free ports with its own data
directory (SQLite, embedded Redis), and after the signal every process it started must be gone
and every port free.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from gpmas.demo_accounts import DEMO_ADMIN
from sandbox import devstack
from sandbox.port_owner import port_owner
from tests.processes import ROOT, free_ports, wait_for

PORT_NAMES = (
    "GPMAS_WEB_PORT",
    "FLOWER_PORT",
    "SANDBOX_HTTP_PORT",
    "SANDBOX_SMTP_PORT",
    "SANDBOX_SES_BACKEND_PORT",
    "GPMAS_EMBEDDED_REDIS_PORT",
)


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def stack_env(data_dir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(
            # A fresh shell: nothing of the tests' own configuration (DEBUG, SECRET_KEY) either.
            ("PYTEST", "DATABASE_URL", "REDIS_URL", "GPMAS_", "SANDBOX_", "FLOWER_")
            + ("DEBUG", "SECRET_KEY", "DJANGO_")
        )
    }
    env.update(dict(zip(PORT_NAMES, map(str, free_ports(len(PORT_NAMES))), strict=True)))
    env.update(GPMAS_DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="gpmas.settings")
    return env


def children(pid: int) -> set[int]:
    """Every descendant of ``pid`` now (from /proc's parent links)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def start_stack(tmp_path: Path) -> tuple[subprocess.Popen, dict[str, str]]:
    env = stack_env(tmp_path / "data")
    log = (tmp_path / "devstack.log").open("wb")
    stack = subprocess.Popen(
        [sys.executable, "-m", "sandbox.devstack"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # our signal goes to the devstack alone, not to its group
    )

    def up() -> bool:
        if stack.poll() is not None:
            raise AssertionError((tmp_path / "devstack.log").read_text()[-3000:])
        return all(listening(int(env[name])) for name in PORT_NAMES)

    wait_for(up, timeout=150, interval=0.5, message="every port of the devstack")
    log_text = (tmp_path / "devstack.log").read_text
    try:
        wait_for(lambda: "GPMAS is running" in log_text(), timeout=30, interval=0.5)
    except AssertionError as timed_out:
        # The log as it is at the timeout (where the announcement thread's error would be).
        log = log_text()[-2000:]
        raise AssertionError(f"{timed_out}: the printed URLs; log ends {log}") from None
    web, (admin, _, password) = env["GPMAS_WEB_PORT"], DEMO_ADMIN
    assert f"http://127.0.0.1:{web}/admin/    admin:     {admin} / {password}" in log_text()
    return stack, env


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_stop_signal_stops_every_process_and_frees_every_port(tmp_path, signum):
    stack, env = start_stack(tmp_path)
    tree = children(stack.pid)
    try:
        pid_file = Path(env["GPMAS_DATA_DIR"]) / "devstack.pid"
        assert pid_file.read_text().strip() == str(stack.pid)
        assert len(tree) >= 6, (
            tree
        )  # redis, honcho, web, worker (+ its pool), beat, flower, sandbox

        stack.send_signal(signum)

        assert stack.wait(timeout=60) == 0
        wait_for(
            lambda: not [pid for pid in tree if alive(pid)],
            timeout=30,
            message=f"every process of the stack to end: {sorted(tree)}",
        )
        wait_for(
            lambda: not [n for n in PORT_NAMES if listening(int(env[n]))],
            timeout=10,
            message="every port to be free",
        )
        assert not pid_file.exists()
    finally:
        if stack.poll() is None:
            stack.kill()
        for pid in tree:  # only on failure: nothing is left otherwise
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_second_dev_up_says_which_process_holds_the_ports_and_how_to_stop_it(tmp_path):
    stack, env = start_stack(tmp_path)
    try:
        second = subprocess.run(
            [sys.executable, "-m", "sandbox.devstack"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1
        message = second.stderr
        assert f"A previous `./dev up` is still running (pid {stack.pid})" in message
        assert f"`kill {stack.pid}`" in message
        redis_port = env["GPMAS_EMBEDDED_REDIS_PORT"]
        assert f"port {redis_port} (GPMAS_EMBEDDED_REDIS_PORT) is in use by pid " in message
        assert "redis-server" in message
        assert stack.poll() is None  # the first stack is untouched
    finally:
        stack.send_signal(signal.SIGTERM)
        stack.wait(timeout=60)


def test_a_port_held_by_another_process_is_named_with_its_pid(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = {name: str(p) for name, p in zip(PORT_NAMES, free_ports(6), strict=True)}
        env["GPMAS_WEB_PORT"] = str(port)

        message = devstack.busy_ports(env, previous=None)

        assert port_owner(port).pid == os.getpid()
        assert f"port {port} (GPMAS_WEB_PORT) is in use by pid {os.getpid()}: " in message
        assert "stop them with `kill <pid>`" in message
    assert devstack.busy_ports(env, previous=None) == ""
