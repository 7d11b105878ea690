"""Handing a task to the broker: at once, or not at all."""

import contextlib
from collections.abc import Callable, Iterator

from celery import Task


def publish_or_fail_fast(task: Task, *args, expires: float | None = None) -> None:
    """Publish at once or raise: no connection retries.

    Celery's producer retries a refused broker connection for seconds; a web request that
    nudges the drain must not hang that long when Redis is down (the outbox row is already
    committed, and the periodic drain finds it).
    """
    with fail_fast_publisher(task, expires=expires) as publish:
        publish(*args)


@contextlib.contextmanager
def fail_fast_publisher(
    task: Task, *, expires: float | None = None
) -> Iterator[Callable[..., None]]:
    """A ``publish(*args)`` for many messages over one broker connection, each failing fast.

    A connection per message cost the drain ten Redis round trips per batch (connect, client
    name, health pings) against one for the message itself. The connection opens on the first
    publish, so a drain with nothing to publish never touches the broker.
    """
    with task.app.connection_for_write() as connection:
        connected = False

        def publish(*args) -> None:
            nonlocal connected
            if not connected:
                connection.ensure_connection(
                    max_retries=1, interval_start=0, interval_step=0, timeout=2
                )
                connected = True
            task.apply_async(args=args or None, connection=connection, retry=False, expires=expires)

        yield publish
