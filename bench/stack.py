"""What every benchmark runs on: its own database, its own Redis keys, a sandbox in its own process.

``prepare()`` must run before Django is set up: it creates a fresh PostgreSQL database for this
run on the server DATABASE_URL names (default: the local one CI uses), picks a Redis key prefix
of its own (REDIS_URL, default the local server; an embedded redis-server when none answers),
and points the settings at them. ``finish()`` drops the database and deletes the keys. The
child processes (the sandbox, the workers, beat) are started by ``bench.processes``.
"""

from __future__ import annotations

import atexit
import os
import platform
import socket
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
RUN_ID = uuid.uuid4().hex[:8]
SCRATCH = Path(tempfile.gettempdir()) / f"gpmas-bench-{RUN_ID}"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


class BenchSetupError(RuntimeError):
    """The benchmark cannot run here; the message says why in one line."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition, *, timeout: float, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
    return value


def _create_database(server_url: str) -> str:
    import psycopg

    parts = urlsplit(server_url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise BenchSetupError(f"DATABASE_URL must name a PostgreSQL server, not {parts.scheme!r}")
    name = f"gpmas_bench_{RUN_ID}"
    admin = urlunsplit(parts._replace(scheme="postgresql"))
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        first_line = str(exc).strip().splitlines()[0]
        where = f"{parts.hostname}:{parts.port or 5432}"
        raise BenchSetupError(f"PostgreSQL at {where} failed: {first_line}") from None

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    atexit.register(drop)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _redis_url() -> str:
    import redis

    url = os.environ.get("REDIS_URL", DEFAULT_REDIS_URL)
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
        return url
    except redis.RedisError:
        if "REDIS_URL" in os.environ:
            raise BenchSetupError(f"Redis at {url} does not answer") from None
    from gpmas.embedded_redis import EmbeddedRedis

    embedded = EmbeddedRedis(SCRATCH / "redis", appendonly=False).start()
    atexit.register(embedded.stop)
    return embedded.url


def prepare() -> None:
    """Environment for this run; call before ``django.setup()``."""
    SCRATCH.mkdir(parents=True, exist_ok=True)
    database_url = _create_database(os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL))
    smtp_port, http_port, ses_port = free_port(), free_port(), free_port()
    os.environ.update(
        DJANGO_SETTINGS_MODULE="bench.settings",
        DATABASE_URL=database_url,
        REDIS_URL=_redis_url(),
        GPMAS_REDIS_PREFIX=f"gpmas-bench-{RUN_ID}",
        GPMAS_DATA_DIR=str(SCRATCH),
        # Production mode: DEBUG would keep every SQL query in memory in every process.
        DEBUG="0",
        SECRET_KEY=os.environ.get("SECRET_KEY") or "bench-only-" + uuid.uuid4().hex * 2,
        SECURE_SSL_REDIRECT="0",
        SANDBOX_SMTP_PORT=str(smtp_port),
        SANDBOX_HTTP_PORT=str(http_port),
        SANDBOX_SES_BACKEND_PORT=str(ses_port),
        GPMAS_SANDBOX_URL=f"http://127.0.0.1:{http_port}",
    )
    os.chdir(SCRATCH)  # django-mailer's lock file and any other droppings go here
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def finish() -> None:
    import redis
    from django.conf import settings
    from django.db import connections

    connections.close_all()
    client = redis.Redis.from_url(settings.REDIS_URL)
    for key in client.scan_iter(match=f"{settings.REDIS_KEY_PREFIX}*", count=1000):
        client.delete(key)
    # Celery's broker keys carry no prefix: the queue is empty by now; bindings are harmless.


def machine() -> dict[str, str]:
    import django
    import psycopg

    cpu = ""
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg = cursor.fetchone()[0]
    import redis
    from django.conf import settings

    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory_gib": f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f}",
        "python": platform.python_version(),
        "django": django.get_version(),
        "postgresql": pg,
        "psycopg": psycopg.__version__,
        "redis": redis.Redis.from_url(settings.REDIS_URL).info()["redis_version"],
        "kernel": platform.release(),
        "speed_probe": speed_probe(),
    }


def speed_probe() -> str:
    """This machine's speed right now, so runs on different days can be compared: a fixed
    CPU-bound loop (100,000 HMAC-SHA256) and 1,000 ``SELECT 1`` round trips to PostgreSQL.
    The 2-core machine's speed moves between days (its host shares the cores; see the
    ``steal`` share each latency row reports)."""
    import hashlib
    import hmac

    from django.db import connection

    started = time.perf_counter()
    for number in range(100_000):
        hmac.new(b"k" * 32, str(number).encode(), hashlib.sha256).digest()
    cpu_seconds = time.perf_counter() - started
    with connection.cursor() as cursor:
        started = time.perf_counter()
        for _ in range(1000):
            cursor.execute("SELECT 1")
        round_trip_ms = time.perf_counter() - started
    return f"hmac loop {cpu_seconds:.2f} s, PostgreSQL round trip {round_trip_ms:.2f} ms"


def steal_jiffies() -> tuple[int, int] | None:
    """(non-idle, stolen) clock ticks of the whole machine so far, or None. Stolen time is
    CPU the hypervisor gave to someone else while this machine had work to run."""
    try:
        fields = list(map(int, Path("/proc/stat").read_text().splitlines()[0].split()[1:9]))
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return user + nice + system + irq + softirq + steal, steal


def machine_cpu_seconds() -> float | None:
    """CPU time the whole machine has spent busy so far (every process, all cores), or None."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq = map(int, fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def sandbox_stats() -> dict:
    from sandbox import config
    from sandbox.client import SandboxClient

    return SandboxClient(config.load().http_url).stats()


def sandbox_reset() -> None:
    from sandbox import config
    from sandbox.client import SandboxClient

    SandboxClient(config.load().http_url).reset()


def configure_sandbox_providers() -> None:
    """Provider rows for the running sandbox, and their secrets in the environment (which the
    worker processes started after this inherit)."""
    from sandbox import config, providers

    sandbox = config.load()
    os.environ.update(
        providers.sandbox_secrets(
            api_key=sandbox.api_key,
            smtp_username=sandbox.smtp_username,
            smtp_password=sandbox.smtp_password,
        )
    )
    providers.configure_sandbox_providers(
        http_url=sandbox.http_url, smtp_host="127.0.0.1", smtp_port=sandbox.smtp_port
    )
