"""The Celery app. Configuration lives in settings.py under the CELERY_ namespace."""

import os

from celery import Celery
from celery.signals import (
    task_postrun,
    task_prerun,
    worker_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gpmas.settings")

app = Celery("gpmas")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def _import_provider_sdks(**kwargs) -> None:
    # In the main process, before the pool forks: otherwise every pool process spends a second
    # or more of CPU importing boto3 and the other SDKs on its first send.
    from delivery.providers import ADAPTERS, adapter_class

    for kind in ADAPTERS:
        adapter_class(kind)


@task_prerun.connect
@task_postrun.connect
def _close_old_database_connections(sender=None, **kwargs) -> None:
    # What Django does around every request: drop a connection past DATABASE_CONN_MAX_AGE or
    # one that failed, and check the rest before reuse. Celery's own fixup would close it
    # after every task instead (settings.CELERY_DB_REUSE_MAX turns that off): a new
    # PostgreSQL session per batch of 100 jobs.
    if getattr(getattr(sender, "request", None), "is_eager", False):
        return  # run inline by apply(): the connection is its caller's, maybe mid-transaction
    from django.db import close_old_connections

    close_old_connections()


@worker_process_shutdown.connect
def _close_provider_connections(**kwargs) -> None:
    # Let the calls still in flight end and be recorded (they end within the provider
    # timeouts), then say goodbye on the adapters' connections (SMTP QUIT).
    from delivery import inflight
    from delivery.connections import close_adapters

    inflight.shutdown()
    close_adapters()


@worker_ready.connect
def _start_heartbeat(sender, **kwargs) -> None:
    from gpmas.workers import start_heartbeat

    start_heartbeat(sender.hostname)


@worker_shutdown.connect
def _stop_heartbeat(sender, **kwargs) -> None:
    from gpmas.workers import forget

    forget(sender.hostname)
