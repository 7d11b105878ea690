"""Real processes for tests: Celery workers (and later beat) on the test database and Redis.

Each starts in its own session so a test can SIGKILL a worker's main process or one of its
children exactly as a crash would, without touching anything else on the machine.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def wait_for(
    condition: Callable[[], object],
    *,
    timeout: float,
    interval: float = 0.05,
    message: str = "condition",
) -> object:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on 127.0.0.1 right now (all held at once while chosen)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def database_slots() -> int:
    """Connections to use at once: what the server has free, less a margin for the others."""
    if connection.vendor != "postgresql":
        return 16  # SQLite serializes writers itself
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('max_connections')::int"
            " - (SELECT count(*) FROM pg_stat_activity)"
        )
        free = cursor.fetchone()[0]
    return max(8, min(60, free - 15))


def test_database_url() -> str:
    """The URL of the database this test run created (pytest-django's test database)."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] or ""
    if db["PASSWORD"]:
        auth += f":{db['PASSWORD']}"
    host = f"{auth}@" if auth else ""
    return f"postgres://{host}{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def process_environment(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(
        DJANGO_SETTINGS_MODULE="gpmas.settings",
        DEBUG="1",
        DATABASE_URL=test_database_url(),
        REDIS_URL=settings.REDIS_URL,
        GPMAS_REDIS_PREFIX=settings.REDIS_KEY_PREFIX,
        GPMAS_JOB_LEASE_SECONDS="20",
        CELERY_TASK_TIME_LIMIT="15",
        GPMAS_BACKOFF_BASE_SECONDS=str(settings.GPMAS_BACKOFF_BASE_SECONDS),
        GPMAS_BACKOFF_CAP_SECONDS=str(settings.GPMAS_BACKOFF_CAP_SECONDS),
        GPMAS_PROVIDER_CONNECT_TIMEOUT=str(settings.GPMAS_PROVIDER_CONNECT_TIMEOUT),
        GPMAS_PROVIDER_READ_TIMEOUT=str(settings.GPMAS_PROVIDER_READ_TIMEOUT),
        PYTHONUNBUFFERED="1",
    )
    env.update(overrides)
    return env


class CeleryWorker:
    def __init__(self, name: str, log_dir: Path, *, concurrency: int = 1, **env: str) -> None:
        self.name = name
        self.concurrency = concurrency
        self.env = process_environment(**env)
        self.log_path = log_dir / f"worker-{name}.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> CeleryWorker:
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "gpmas",
            "worker",
            "--pool=prefork",
            f"--concurrency={self.concurrency}",
            f"--hostname={self.name}@%h",
            "--without-mingle",
            "--without-gossip",
            "--loglevel=INFO",
        ]
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(self._ready, timeout=timeout, message=f"worker {self.name} to be ready")
        return self

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"worker {self.name} exited:\n{self.log()[-3000:]}")
        return " ready." in self.log()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def children(self) -> list[int]:
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            return [int(pid) for pid in path.read_text().split()]
        except FileNotFoundError:
            return []

    def kill_child(self) -> int:
        """SIGKILL one pool process, as the OOM killer would."""
        pid = wait_for(self.children, timeout=10, message="a pool process")[0]
        os.kill(pid, signal.SIGKILL)
        return pid

    def kill(self) -> None:
        """SIGKILL the main process and its pool at once: the machine lost the worker."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self, timeout: float = 30) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)  # warm shutdown: finish the current task
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self._log.close()


class WebServer:
    """The Django app in its own process (runserver, no reloader) on a free port."""

    def __init__(self, log_dir: Path, **env: str) -> None:
        self.env = process_environment(**env)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"web-{self.port}.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> WebServer:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{self.port}", "--noreload"],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        def answers() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"web server exited:\n{self.log_path.read_text()[-3000:]}")
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", self.port)) == 0

        wait_for(answers, timeout=timeout, message="the web server")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(10)
            self._log.close()


class CeleryBeat:
    """Celery beat (the periodic drain) on its own schedule file."""

    def __init__(self, log_dir: Path, **env: str) -> None:
        self.env = process_environment(**env)
        self.log_path = log_dir / "beat.log"
        self.schedule = log_dir / "beat-schedule"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> CeleryBeat:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "gpmas",
                "beat",
                "--loglevel=INFO",
                f"--schedule={self.schedule}",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(
            lambda: "beat: Starting" in self.log_path.read_text(errors="replace"),
            timeout=timeout,
            message="beat to start",
        )
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
            self._log.close()
