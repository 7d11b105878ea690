"""The benchmark's child processes: the sandbox, Celery workers and beat, each with its output
in a log file under the run's scratch directory (``bench.stack.SCRATCH``)."""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import uuid

from bench.stack import ROOT, RUN_ID, SCRATCH, wait_until


class Process:
    """A child process with its output in a log file under the run's scratch directory."""

    def __init__(self, name: str, command: list[str], **env: str) -> None:
        self.name = name
        self.log_path = SCRATCH / f"{name}.log"
        self._log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        atexit.register(self.stop)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def check_alive(self) -> None:
        if self.popen.poll() is not None:
            raise RuntimeError(f"{self.name} exited:\n{self.log()[-3000:]}")

    def stop(self, timeout: float = 20) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._log.close()


_sandbox: Process | None = None


def start_sandbox() -> Process:
    """The emulators in their own process, so their CPU is not the benchmark process's."""
    global _sandbox
    sandbox = _sandbox = Process("sandbox", [sys.executable, "manage.py", "sandbox", "run"])

    def answering() -> bool:
        sandbox.check_alive()
        return "GPMAS sandbox running" in sandbox.log()

    wait_until(answering, timeout=60, what="the sandbox")
    return sandbox


def sandbox_pid() -> int:
    """The sandbox process (its CPU is the sink's, not a contestant's)."""
    return _sandbox.popen.pid


def start_workers(
    count: int, *, concurrency: int = 1, label: str = "bench", **env: str
) -> list[Process]:
    """``count`` Celery worker processes (prefork, one pool process each), as deployed. A
    ``label`` of its own tells a later set apart from stopped ones whose heartbeats linger."""
    workers = []
    for number in range(1, count + 1):
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "gpmas",
            "worker",
            "--pool=prefork",
            f"--concurrency={concurrency}",
            f"--hostname={label}{number}-{RUN_ID}@%h",
            "--without-mingle",
            "--without-gossip",
            "--loglevel=WARNING",
        ]
        name = f"worker{number}" if label == "bench" else f"{label}-worker{number}"
        workers.append(Process(name, command, **env))
    from django.conf import settings

    def all_ready() -> bool:
        for worker in workers:
            worker.check_alive()
        return len([w for w in _worker_heartbeats(settings) if w.startswith(label)]) >= count

    wait_until(all_ready, timeout=90, interval=0.2, what="the workers")
    return workers


def _worker_heartbeats(settings) -> list[str]:
    from gpmas.workers import workers_seen

    return [name for name in workers_seen() if RUN_ID in name]


def start_beat() -> Process:
    """Celery beat on its default schedule: the periodic drain, as deployed."""
    schedule = SCRATCH / f"beat-schedule-{uuid.uuid4().hex[:6]}"
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "gpmas",
        "beat",
        "--loglevel=WARNING",
        f"--schedule={schedule}",
    ]
    return Process("beat", command)
