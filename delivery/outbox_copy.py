"""Many new jobs written by COPY on PostgreSQL (``services.email_enqueue`` calls it).

A bulk invite writes ten thousand jobs of a few kilobytes each. Through ``bulk_create`` (an
INSERT of UNNESTed arrays) psycopg quotes every array element in Python: 200-470 ms per thousand
jobs here, the largest part of the request. COPY into a scratch table and one
``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` from it takes about 100 ms, and keeps the
outbox's idempotency: a key the outbox has is skipped, exactly as ``bulk_create(...,
ignore_conflicts=True)`` skips it. Fewer jobs, or another database: ``bulk_create``.
"""

from __future__ import annotations

import datetime as dt
import functools

from django.db import connection

from delivery.models import EmailJob

# Below this many jobs the one INSERT of bulk_create costs no more than the scratch table.
COPY_FROM = 100
SCRATCH = "gpmas_new_jobs"


def insert(jobs: list[EmailJob]) -> dict[str, tuple[int, dt.datetime]]:
    """INSERT ``jobs``, skipping idempotency keys the outbox has; return {key: (id, created_at)}
    of the rows this wrote where the database says so (COPY), else {} (read them back)."""
    if connection.vendor != "postgresql" or len(jobs) < COPY_FROM:
        EmailJob.objects.bulk_create(jobs, ignore_conflicts=True)
        return {}
    fields = _fields()
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    with connection.cursor() as cursor:
        # A scratch table for the transaction (email_enqueue runs in one): created by the first
        # batch, emptied by the INSERT that moves its rows, gone at commit or rollback.
        cursor.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {SCRATCH} ON COMMIT DROP AS "
            f"SELECT {columns} FROM {EmailJob._meta.db_table} WITH NO DATA"
        )
        with cursor.cursor.copy(f"COPY {SCRATCH} ({columns}) FROM STDIN") as copy:
            for job in jobs:
                # What bulk_create does per value: auto_now(_add) stamps, then the stored form.
                copy.write_row([_db_value(field, field.pre_save(job, True)) for field in fields])
        cursor.execute(
            f"WITH moved AS (DELETE FROM {SCRATCH} RETURNING *) "
            f"INSERT INTO {EmailJob._meta.db_table} ({columns}) SELECT {columns} FROM moved "
            "ON CONFLICT DO NOTHING RETURNING idempotency_key, id, created_at"
        )
        return {key: (pk, created) for key, pk, created in cursor.fetchall()}


def _db_value(field, value):
    # None and aware datetimes are stored as they are (what get_db_prep_save returns for them on
    # PostgreSQL), without its checks: four datetimes a job were a third of the COPY's time.
    if value is None or (isinstance(value, dt.datetime) and value.tzinfo is not None):
        return value
    return field.get_db_prep_save(value, connection)


@functools.cache
def _fields():
    return [field for field in EmailJob._meta.concrete_fields if not field.primary_key]
