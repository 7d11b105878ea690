"""GPMAS settings, read from environment variables.

Every variable is listed in README.md with its default. The defaults run the embedded setup
(SQLite in ./data, Redis on localhost, the sandbox providers); production sets DEBUG=0 and real
secrets, and then passes ``manage.py check --deploy``.
"""

from importlib.util import find_spec
from pathlib import Path

from gpmas.env import (
    ConfigError,
    env_bool,
    env_database,
    env_float,
    env_int,
    env_list,
    env_redis_url,
    env_str,
)
from gpmas.ops_env import env_time_zone, env_tokens
from gpmas.time_budget import SendTimes, batch_deadline

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("GPMAS_DATA_DIR", str(BASE_DIR / "data")))

DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ConfigError("SECRET_KEY", "must be set when DEBUG is off")
    SECRET_KEY = "django-insecure-local-development-only-not-for-production"  # noqa: S105

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "reliability",
    "delivery",
    "events",
    "invitations",
    "gpmas",
]
# The provider emulators (``manage.py sandbox``, ``./dev up``, the tests) are a development and
# test tool: an app only where the ``sandbox`` extra is installed, so a production install without
# moto and aiosmtpd starts without it.
if find_spec("moto") is not None and find_spec("aiosmtpd") is not None:
    INSTALLED_APPS.append("sandbox")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Organizers name themselves before anything else (what guests read): events/profile.py.
    "events.profile.DisplayNameRequired",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "gpmas.urls"
WSGI_APPLICATION = "gpmas.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "gpmas.context_processors.system_status",
            ],
        },
    },
]

DATABASES = {"default": env_database("DATABASE_URL", f"sqlite:///{DATA_DIR / 'gpmas.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share one SQLite file in the embedded setup: wait for the write lock
    # instead of failing at once, and take it at BEGIN so a read never has to upgrade.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# One Redis serves the Celery broker, the cache, the locks and the provider state. Every key this
# project writes itself starts with REDIS_KEY_PREFIX, so a test run can use a shared server and
# clean up only its own keys.
REDIS_URL = env_redis_url("REDIS_URL", "redis://127.0.0.1:6379/0")
REDIS_KEY_PREFIX = env_str("GPMAS_REDIS_PREFIX", "gpmas")
REDIS_SOCKET_TIMEOUT = env_float("GPMAS_REDIS_TIMEOUT", 2.0, minimum=1.5)

CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": f"{REDIS_KEY_PREFIX}:cache",
        "OPTIONS": {
            "SOCKET_CONNECT_TIMEOUT": REDIS_SOCKET_TIMEOUT,
            "SOCKET_TIMEOUT": REDIS_SOCKET_TIMEOUT,
        },
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# --- Security: strict whenever DEBUG is off --------------------------------------------------
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # load balancers probe over plain HTTP
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
if env_bool("GPMAS_BEHIND_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Email delivery (docs/job-states.md, docs/architecture.md "Sending") -----------------------
GPMAS_DEFAULT_FROM_EMAIL = env_str("GPMAS_DEFAULT_FROM_EMAIL", "GPMAS <invitations@gpmas.local>")
GPMAS_SITE_URL = env_str("GPMAS_SITE_URL", "http://127.0.0.1:8000")
GPMAS_JOB_LEASE_SECONDS = env_int("GPMAS_JOB_LEASE_SECONDS", 300, minimum=3)
GPMAS_MAX_ATTEMPTS = env_int("GPMAS_MAX_ATTEMPTS", 8, minimum=1)
GPMAS_MAX_AGE_SECONDS = env_int("GPMAS_MAX_AGE_SECONDS", 2 * 24 * 3600, minimum=60)
GPMAS_BACKOFF_BASE_SECONDS = env_float("GPMAS_BACKOFF_BASE_SECONDS", 10.0, minimum=0)
GPMAS_BACKOFF_CAP_SECONDS = env_float("GPMAS_BACKOFF_CAP_SECONDS", 3600.0, minimum=0)
GPMAS_DRAIN_INTERVAL_SECONDS = env_float("GPMAS_DRAIN_INTERVAL_SECONDS", 5.0, minimum=0.1)
GPMAS_DRAIN_BATCH_SIZE = env_int("GPMAS_DRAIN_BATCH_SIZE", 250, minimum=1)
GPMAS_DRAIN_LIMIT = env_int("GPMAS_DRAIN_LIMIT", 5000, minimum=1)
# A job dispatched this recently is not published again: its Celery message is probably queued.
GPMAS_REDISPATCH_AFTER_SECONDS = env_int("GPMAS_REDISPATCH_AFTER_SECONDS", 60, minimum=1)
GPMAS_PROVIDER_CONNECT_TIMEOUT = env_float("GPMAS_PROVIDER_CONNECT_TIMEOUT", 5.0, minimum=0.1)
GPMAS_PROVIDER_READ_TIMEOUT = env_float("GPMAS_PROVIDER_READ_TIMEOUT", 20.0, minimum=0.1)

# Provider ranking (docs/ranking.md): penalty half-life, circuit thresholds and open times.
GPMAS_PENALTY_HALF_LIFE_SECONDS = env_float("GPMAS_PENALTY_HALF_LIFE_SECONDS", 60.0, minimum=0.01)
GPMAS_OPEN_THRESHOLD = env_float("GPMAS_OPEN_THRESHOLD", 100.0, minimum=1)
GPMAS_BASE_OPEN_SECONDS = env_float("GPMAS_BASE_OPEN_SECONDS", 30.0, minimum=0.01)
GPMAS_MAX_OPEN_SECONDS = env_float("GPMAS_MAX_OPEN_SECONDS", 900.0, minimum=0.01)
# A rate-limited provider without a Retry-After (SES throttling) is skipped this long.
GPMAS_RATE_LIMIT_SECONDS = env_float("GPMAS_RATE_LIMIT_SECONDS", 30.0, minimum=0)
# How long one probe of a half-open provider may hold its slot (longer than any provider call).
GPMAS_PROBE_TIMEOUT_SECONDS = env_int(
    "GPMAS_PROBE_TIMEOUT_SECONDS",
    int(GPMAS_PROVIDER_CONNECT_TIMEOUT + GPMAS_PROVIDER_READ_TIMEOUT) + 5,
    minimum=1,
)
# Latency in the ranking (docs/ranking.md, "Latency"): how fast the estimate forgets a slow spell,
# and the call duration past which a success counts as a soft failure.
GPMAS_LATENCY_DECAY_SECONDS = env_float("GPMAS_LATENCY_DECAY_SECONDS", 10.0, minimum=0.1)
GPMAS_LATENCY_CEILING_SECONDS = env_float(
    "GPMAS_LATENCY_CEILING_SECONDS", GPMAS_PROVIDER_READ_TIMEOUT / 2, minimum=0.01
)
# Provider calls one worker process keeps in flight at once (a slow call takes one slot).
GPMAS_CALLS_IN_FLIGHT = env_int("GPMAS_CALLS_IN_FLIGHT", 4, minimum=1)
# Messages per SES SendBulkEmail call (at most SES's 50); 1 sends each by SendEmail.
GPMAS_SES_BATCH_SIZE = env_int("GPMAS_SES_BATCH_SIZE", 50, minimum=1)

# --- Celery (docs/architecture.md, "Celery settings and why") -----------------------------------
CELERY_BROKER_URL = env_redis_url("CELERY_BROKER_URL", REDIS_URL)
CELERY_TASK_ACKS_LATE = True
# Database connections in workers follow DATABASE_CONN_MAX_AGE (gpmas/celery.py), not Celery's
# close-after-every-task default.
CELERY_DB_REUSE_MAX = 1_000_000
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
# Celery's safe default cancels running late-ack tasks when the broker connection drops, so the
# redelivered message cannot run twice. Here running twice is harmless (the job claim is a
# conditional UPDATE) while cancelling is not: a send cancelled after the provider accepted is
# sent again once its lease runs out. Measured by tests/chaos (Redis killed mid-stream).
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Time limits stay below the job lease, and the lease below the broker's visibility timeout, so a
# task is killed before its lease runs out and a lost message is redelivered only after both.
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", GPMAS_JOB_LEASE_SECONDS - 30, minimum=2)
# The soft limit interrupts a batch between provider calls; the hard limit kills the process.
CELERY_TASK_SOFT_TIME_LIMIT = max(1, CELERY_TASK_TIME_LIMIT * 4 // 5)
CELERY_VISIBILITY_TIMEOUT = env_int("CELERY_VISIBILITY_TIMEOUT", 3600, minimum=60)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": CELERY_VISIBILITY_TIMEOUT,
    "socket_timeout": 10,
    "socket_connect_timeout": 5,
    # Keep the broker's keys inside our prefix too (one place to look, one prefix to clean up).
    "global_keyprefix": f"{REDIS_KEY_PREFIX}:celery:",
}
# Seconds after its claim past which a batch starts no provider call: derived from the time
# limits and the provider timeouts, which are checked together here (gpmas/time_budget.py).
GPMAS_BATCH_DEADLINE_SECONDS = batch_deadline(
    SendTimes(
        lease=GPMAS_JOB_LEASE_SECONDS,
        time_limit=CELERY_TASK_TIME_LIMIT,
        soft_time_limit=CELERY_TASK_SOFT_TIME_LIMIT,
        visibility_timeout=CELERY_VISIBILITY_TIMEOUT,
        connect_timeout=GPMAS_PROVIDER_CONNECT_TIMEOUT,
        read_timeout=GPMAS_PROVIDER_READ_TIMEOUT,
        probe_timeout=GPMAS_PROBE_TIMEOUT_SECONDS,
        latency_ceiling=GPMAS_LATENCY_CEILING_SECONDS,
        calls_in_flight=GPMAS_CALLS_IN_FLIGHT,
        batch_size=GPMAS_DRAIN_BATCH_SIZE,
    )
)
CELERY_BEAT_SCHEDULE = {
    "drain-outbox": {
        "task": "gpmas.delivery.drain",
        "schedule": GPMAS_DRAIN_INTERVAL_SECONDS,
        "options": {"expires": GPMAS_DRAIN_INTERVAL_SECONDS * 2},
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # python-redis-lock logs every acquire and release at INFO: one line per drain tick.
    "loggers": {"redis_lock": {"level": "WARNING"}},
}

# --- Events and invitations -------------------------------------------------------------------
# Accepted guests get a reminder this long before the start (0 = no reminders).
GPMAS_REMINDER_OFFSET_SECONDS = env_int("GPMAS_REMINDER_OFFSET_SECONDS", 24 * 3600, minimum=0)
# How long a request waits for a busy event or invitation lock before answering "try again".
GPMAS_LOCK_WAIT_SECONDS = env_float("GPMAS_LOCK_WAIT_SECONDS", 5.0, minimum=0)
GPMAS_GUEST_LIST_MAX_LINES = env_int("GPMAS_GUEST_LIST_MAX_LINES", 10_000, minimum=1)
GPMAS_GUEST_LIST_MAX_BYTES = env_int("GPMAS_GUEST_LIST_MAX_BYTES", 2 * 1024 * 1024, minimum=1024)
# The preview posts the checked list back in a form field: leave room for a full-size list.
DATA_UPLOAD_MAX_MEMORY_SIZE = max(2_621_440, 2 * GPMAS_GUEST_LIST_MAX_BYTES)


def _env_rate(name: str, default: str) -> str:
    """A django-ratelimit rate: ``30/m`` is 30 per minute (units s, m, h, d; ``5/10m`` works)."""
    value = env_str(name, default).strip()
    count, _, period = value.partition("/")
    unit, amount = period[-1:], period[:-1]
    valid_period = unit in {"s", "m", "h", "d"} and (not amount or amount.isdigit())
    if not (count.isdigit() and int(count) > 0 and valid_period):
        raise ConfigError(name, f"must be a rate like 30/m (per s, m, h or d), got {value!r}")
    return value


# Answers per client address on the guest pages, and invitation sends per organizer.
GPMAS_GUEST_RATE_LIMIT = _env_rate("GPMAS_GUEST_RATE_LIMIT", "30/m")
GPMAS_INVITE_RATE_LIMIT = _env_rate("GPMAS_INVITE_RATE_LIMIT", "120/h")
RATELIMIT_USE_CACHE = "default"
RATELIMIT_FAIL_OPEN = True
# Organizer pages: "Emails are delayed" once an organizer's email is due and unsent this long
# (s); how long a revoke can be undone (s); how often the event page refreshes (ms, 0 = never).
GPMAS_EMAIL_DELAYED_AFTER_SECONDS = env_int("GPMAS_EMAIL_DELAYED_AFTER_SECONDS", 300, minimum=1)
GPMAS_REVOKE_UNDO_SECONDS = env_int("GPMAS_REVOKE_UNDO_SECONDS", 300, minimum=0)
GPMAS_LIVE_POLL_MS = env_int("GPMAS_LIVE_POLL_MS", 5000, minimum=0)

# --- Operations: times on the health page and in `gpmas status`; who sees /healthz in detail ---
GPMAS_TIME_ZONE = env_time_zone("GPMAS_TIME_ZONE", TIME_ZONE)
GPMAS_HEALTH_TOKENS = env_tokens("GPMAS_HEALTH_TOKEN")
# --- Delivery events: the providers' tracking webhooks and the suppression list -----------------
from gpmas.settings_events import *  # noqa: E402, F403
