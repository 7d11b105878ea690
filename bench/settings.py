"""Settings for the benchmarks: GPMAS's own settings, plus the peers it is measured against.

django-post-office and django-mailer get their tables in the same database, and Django's SMTP
backend points at the sandbox sink, so every contestant hands its mail to the same server.
"""

from gpmas.settings import *  # noqa: F403
from gpmas.settings import ANYMAIL, INSTALLED_APPS
from sandbox import config
from sandbox.providers import MAILGUN_DOMAIN

_SANDBOX = config.load()

INSTALLED_APPS = [*INSTALLED_APPS, "post_office", "mailer"]

EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
EMAIL_HOST = "127.0.0.1"
EMAIL_PORT = _SANDBOX.smtp_port
EMAIL_HOST_USER = _SANDBOX.smtp_username
EMAIL_HOST_PASSWORD = _SANDBOX.smtp_password
EMAIL_TIMEOUT = 20

# django-post-office sends through Django's SMTP backend with its documented multi-threaded
# defaults (one process, five threads per process, batches of 100).
POST_OFFICE = {
    "BACKENDS": {
        "default": EMAIL_BACKEND,
        # The latency benchmark (bench/latency.py): post-office with django-anymail, the usual
        # pairing for an HTTP provider, pointed at the sandbox's emulators.
        "sendgrid": "anymail.backends.sendgrid.EmailBackend",
        "mailgun": "anymail.backends.mailgun.EmailBackend",
    },
    "THREADS_PER_PROCESS": 5,
    "BATCH_SIZE": 100,
    "LOG_LEVEL": 0,
}
ANYMAIL = {
    **ANYMAIL,  # the webhook settings stay
    "SENDGRID_API_KEY": _SANDBOX.api_key,
    "SENDGRID_API_URL": f"{_SANDBOX.http_url}/v3/",
    "MAILGUN_API_KEY": _SANDBOX.api_key,
    "MAILGUN_API_URL": f"{_SANDBOX.http_url}/v3",
    "MAILGUN_SENDER_DOMAIN": MAILGUN_DOMAIN,
}
# django-mailer: its send_all() takes a lock; keep the lock file in the scratch directory.
MAILER_EMAIL_BACKEND = EMAIL_BACKEND

# The peers log a line per message at INFO; the benchmark prints its own table.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
POST_OFFICE["LOG_LEVEL"] = 0
