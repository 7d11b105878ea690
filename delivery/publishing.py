"""Handing a task to the broker: at once, or not at all."""

from celery import Task


def publish_or_fail_fast(task: Task, *args, expires: float | None = None) -> None:
    """Publish at once or raise: no connection retries.

    Celery's producer retries a refused broker connection for seconds; a web request that
    nudges the drain must not hang that long when Redis is down (the outbox row is already
    committed, and the periodic drain finds it).
    """
    with task.app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=2)
        task.apply_async(args=args or None, connection=connection, retry=False, expires=expires)
